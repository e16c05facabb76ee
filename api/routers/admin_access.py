"""Admins assign permissions to roles and people (8.6.1 e 业务权限管理) and unlock locked accounts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from api.auth import Actor, RecentActorDep
from api.deps import CipherDep, SessionDep
from api.errors import problem_responses
from api.permissions import require_permission
from api.schemas.me import EmailIn, EmailOut
from api.schemas.security import (
    FinanceLevelIn,
    PermissionOut,
    RolePermissionIn,
    RolePermissionsOut,
    UnlockIn,
    UnlockOut,
    UserPermissionIn,
    UserPermissionsOut,
)
from api.schemas.staff import AccountStateIn, AccountStateOut
from api.services import access_admin
from api.services.contact import set_email
from models.common import Role
from models.permissions import Permission

router = APIRouter(prefix="/admin", tags=["access"])

PermissionManagerDep = Annotated[Actor, Depends(require_permission(Permission.PERMISSION_MANAGE))]
AccountManagerDep = Annotated[Actor, Depends(require_permission(Permission.ACCOUNT_MANAGE))]
UserId = Annotated[str, Path(max_length=40)]


@router.get(
    "/permissions",
    response_model=list[PermissionOut],
    responses=problem_responses(401, 403),
    summary="权限目录及各角色默认权限",
)
async def list_permissions(actor: PermissionManagerDep, session: SessionDep) -> list[PermissionOut]:
    return await access_admin.catalogue(session)


@router.put(
    "/roles/{role}/permissions/{permission}",
    response_model=RolePermissionsOut,
    responses=problem_responses(401, 403, 422),
    summary="授予或收回角色的权限",
)
async def set_role_permission(
    role: Role,
    permission: Permission,
    body: RolePermissionIn,
    request: Request,
    actor: PermissionManagerDep,
    _recent: RecentActorDep,
    session: SessionDep,
) -> RolePermissionsOut:
    """Applies to every user of the role who has no personal setting for the permission. Needs a recent sign-in
    (401 `REAUTH_REQUIRED`)."""
    return await access_admin.set_role_permission(session, actor, role, permission, body.granted, body.reason, request)


@router.get(
    "/users/{user_id}/permissions",
    response_model=UserPermissionsOut,
    responses=problem_responses(401, 403, 404),
    summary="用户的有效权限",
)
async def get_user_permissions(user_id: UserId, actor: PermissionManagerDep, session: SessionDep) -> UserPermissionsOut:
    return await access_admin.user_permissions(session, user_id)


@router.put(
    "/users/{user_id}/permissions/{permission}",
    response_model=UserPermissionsOut,
    responses=problem_responses(401, 403, 404, 422),
    summary="单独授予、收回或恢复用户的权限",
)
async def set_user_permission(
    user_id: UserId,
    permission: Permission,
    body: UserPermissionIn,
    request: Request,
    actor: PermissionManagerDep,
    _recent: RecentActorDep,
    session: SessionDep,
) -> UserPermissionsOut:
    """A personal grant or revocation outranks the role's default. Needs a recent sign-in (401 `REAUTH_REQUIRED`)."""
    return await access_admin.set_user_permission(
        session, actor, user_id, permission, body.effect, body.reason, request
    )


@router.put(
    "/users/{user_id}/finance-level",
    response_model=UserPermissionsOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="设置财务人员的岗位级别",
)
async def set_finance_level(
    user_id: UserId,
    body: FinanceLevelIn,
    request: Request,
    actor: PermissionManagerDep,
    _recent: RecentActorDep,
    session: SessionDep,
) -> UserPermissionsOut:
    """财务专员 (clerk) sees and exports reconciliation results; 财务主管 (supervisor) also resolves differences and
    writes off bad debts. Set as the person's grants and revocations of the reconciliation permissions against the
    finance role; 409 `NOT_FINANCE` for other roles. Needs a recent sign-in (401 `REAUTH_REQUIRED`)."""
    return await access_admin.set_finance_level(session, actor, user_id, body.level, body.reason, request)


@router.post(
    "/users/{user_id}/unlock",
    response_model=UnlockOut,
    responses=problem_responses(401, 403, 404, 422),
    summary="解锁因登录失败过多而锁定的账号",
)
async def unlock(
    user_id: UserId, body: UnlockIn, request: Request, actor: AccountManagerDep, session: SessionDep
) -> UnlockOut:
    was_locked = await access_admin.unlock_account(session, actor, user_id, body.reason, request)
    return UnlockOut(user_id=user_id, was_locked=was_locked)


@router.post(
    "/users/{user_id}/disable",
    response_model=AccountStateOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="停用账号",
)
async def disable_account(
    user_id: UserId, body: AccountStateIn, request: Request, actor: AccountManagerDep, session: SessionDep
) -> AccountStateOut:
    """The account can no longer sign in and its sessions end at once (a doctor's or pharmacist's service is
    switched off). 409 `CANNOT_DISABLE_SELF`."""
    ended = await access_admin.set_account_disabled(session, actor, user_id, True, body.reason, request)
    return AccountStateOut(user_id=user_id, disabled=True, sessions_ended=ended)


@router.post(
    "/users/{user_id}/enable",
    response_model=AccountStateOut,
    responses=problem_responses(401, 403, 404, 422),
    summary="启用账号",
)
async def enable_account(
    user_id: UserId, body: AccountStateIn, request: Request, actor: AccountManagerDep, session: SessionDep
) -> AccountStateOut:
    await access_admin.set_account_disabled(session, actor, user_id, False, body.reason, request)
    return AccountStateOut(user_id=user_id, disabled=False)


@router.put(
    "/users/{user_id}/email",
    response_model=EmailOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="设置员工接收通知的电子邮件地址",
)
async def set_user_email(
    user_id: UserId,
    body: EmailIn,
    request: Request,
    actor: AccountManagerDep,
    _recent: RecentActorDep,
    session: SessionDep,
    cipher: CipherDep,
) -> EmailOut:
    """Set (or clear, with null) the address a staff member's e-mailed notices go to, e.g. the finance staff who
    receive the daily reconciliation result. Audited; needs a recent sign-in (401 `REAUTH_REQUIRED`). 409
    `NOT_STAFF` for a patient's account, 422 `INVALID_EMAIL`."""
    masked = await set_email(session, cipher, actor, user_id, body.email, request)
    return EmailOut(user_id=user_id, email_masked=masked)

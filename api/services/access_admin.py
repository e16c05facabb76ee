"""Admins assigning permissions to roles and people (8.6.1 e), and unlocking accounts. Every change is audited with
its reason, in the transaction that makes it."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import Actor
from api.errors import Problem
from api.schemas.security import PermissionOut, RolePermissionsOut, UserPermissionOut, UserPermissionsOut
from api.services import lockout
from api.services.audit import audit
from models.common import Role
from models.permissions import FINANCE_LEVELS, RECONCILIATION_PERMISSIONS, FinanceLevel, Permission
from models.tables import AccessToken, PermissionEntry, RolePermission, User, UserPermission

_USER_VIEW = text("""
    SELECT p.code, p.name, rp.permission IS NOT NULL AS from_role, up.granted
      FROM permissions p
      LEFT JOIN role_permissions rp ON rp.permission = p.code AND rp.role = :role
      LEFT JOIN user_permissions up ON up.permission = p.code AND up.user_id = :user_id
     ORDER BY p.code
""")


async def _user(session: AsyncSession, user_id: str) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise Problem(404, "NOT_FOUND", "未找到", "用户不存在")
    return user


async def catalogue(session: AsyncSession) -> list[PermissionOut]:
    entries = (await session.execute(select(PermissionEntry).order_by(col(PermissionEntry.code)))).scalars().all()
    holders: dict[str, list[Role]] = {}
    for grant in (await session.execute(select(RolePermission))).scalars():
        holders.setdefault(grant.permission, []).append(Role(grant.role))
    return [
        PermissionOut(code=Permission(entry.code), name=entry.name, roles=sorted(holders.get(entry.code, [])))
        for entry in entries
    ]


async def role_permissions(session: AsyncSession, role: Role) -> RolePermissionsOut:
    codes = (
        await session.execute(
            select(col(RolePermission.permission))
            .where(col(RolePermission.role) == str(role))
            .order_by(col(RolePermission.permission))
        )
    ).scalars()
    return RolePermissionsOut(role=role, permissions=[Permission(code) for code in codes])


async def set_role_permission(
    session: AsyncSession,
    actor: Actor,
    role: Role,
    permission: Permission,
    granted: bool,
    reason: str,
    request: Request,
) -> RolePermissionsOut:
    if granted:
        changed = await session.execute(
            insert(RolePermission)
            .values(role=str(role), permission=str(permission), granted_by=actor.user_id)
            .on_conflict_do_nothing()
        )
    else:
        changed = await session.execute(
            delete(RolePermission).where(
                col(RolePermission.role) == str(role), col(RolePermission.permission) == str(permission)
            )
        )
    # A request that changes nothing is not a change to record.
    if changed.rowcount:  # type: ignore[attr-defined]
        action = "permission.role_granted" if granted else "permission.role_revoked"
        audit(
            session,
            actor,
            action,
            "role",
            str(role),
            reason=reason,
            detail={"permission": str(permission)},
            request=request,
        )
        await session.commit()
    return await role_permissions(session, role)


async def user_permissions(session: AsyncSession, user_id: str) -> UserPermissionsOut:
    user = await _user(session, user_id)
    rows = (await session.execute(_USER_VIEW, {"role": user.role, "user_id": user.id})).all()
    permissions = []
    for row in rows:
        if row.granted is None:
            held, source = bool(row.from_role), "role" if row.from_role else "none"
        else:
            held, source = bool(row.granted), "grant" if row.granted else "revoke"
        permissions.append(UserPermissionOut(code=Permission(row.code), name=row.name, held=held, source=source))
    return UserPermissionsOut(user_id=user.id, role=Role(user.role), permissions=permissions)


async def set_user_permission(
    session: AsyncSession,
    actor: Actor,
    user_id: str,
    permission: Permission,
    effect: str,
    reason: str,
    request: Request,
) -> UserPermissionsOut:
    """`grant` or `revoke` sets the person's exception to their role; `inherit` removes it."""
    user = await _user(session, user_id)
    granted = None if effect == "inherit" else effect == "grant"
    await _set_exception(session, user.id, permission, granted, actor.user_id, reason)
    audit(
        session,
        actor,
        f"permission.user_{effect}",
        "user",
        user.id,
        reason=reason,
        detail={"permission": str(permission)},
        request=request,
    )
    await session.commit()
    return await user_permissions(session, user.id)


async def apply_finance_level(
    session: AsyncSession, user_id: str, level: FinanceLevel, granted_by: str | None, reason: str
) -> None:
    """Make a finance user's reconciliation permissions those of `level`: a personal grant or revocation where the
    finance role's default differs from it, none where it agrees (so a later change of the role's default reaches
    the person only where their level does not say otherwise)."""
    from_role = set(
        (
            await session.execute(
                select(col(RolePermission.permission)).where(col(RolePermission.role) == str(Role.FINANCE))
            )
        ).scalars()
    )
    for permission in RECONCILIATION_PERMISSIONS:
        wanted = permission in FINANCE_LEVELS[level]
        exception = None if wanted == (str(permission) in from_role) else wanted
        await _set_exception(session, user_id, permission, exception, granted_by, reason)


async def _set_exception(
    session: AsyncSession,
    user_id: str,
    permission: Permission,
    granted: bool | None,
    granted_by: str | None,
    reason: str,
) -> None:
    """A person's grant (True) or revocation (False) of a permission against their role; None removes it."""
    if granted is None:
        await session.execute(
            delete(UserPermission).where(
                col(UserPermission.user_id) == user_id, col(UserPermission.permission) == str(permission)
            )
        )
        return
    values = {"granted": granted, "granted_by": granted_by, "granted_at": func.now(), "reason": reason}
    await session.execute(
        insert(UserPermission)
        .values(user_id=user_id, permission=str(permission), **values)
        .on_conflict_do_update(index_elements=["user_id", "permission"], set_=values)
    )


async def set_finance_level(
    session: AsyncSession, actor: Actor, user_id: str, level: FinanceLevel, reason: str, request: Request
) -> UserPermissionsOut:
    user = await _user(session, user_id)
    if user.role != Role.FINANCE:
        raise Problem(409, "NOT_FINANCE", "不是财务人员", "岗位级别只适用于财务角色的账号")
    await apply_finance_level(session, user.id, level, actor.user_id, reason)
    audit(
        session,
        actor,
        "permission.finance_level",
        "user",
        user.id,
        reason=reason,
        detail={"level": str(level)},
        request=request,
    )
    await session.commit()
    return await user_permissions(session, user.id)


async def unlock_account(session: AsyncSession, actor: Actor, user_id: str, reason: str, request: Request) -> bool:
    """Lift the lock of the user's login name and forget its failures; returns whether it was locked."""
    user = await _user(session, user_id)
    was_locked = await lockout.unlock(session, lockout.throttle_key(user.username))
    audit(
        session,
        actor,
        "auth.unlocked",
        "user",
        user.id,
        reason=reason,
        detail={"was_locked": was_locked},
        request=request,
    )
    await session.commit()
    return was_locked


async def set_account_disabled(
    session: AsyncSession, actor: Actor, user_id: str, disabled: bool, reason: str, request: Request
) -> int:
    """Turn an account off (its sessions end at once) or on again (8.5.2.4 服务开通与关闭); returns the sessions ended.
    An admin cannot turn their own account off: someone must be left to turn it on."""
    user = await _user(session, user_id)
    if disabled and user.id == actor.user_id:
        raise Problem(409, "CANNOT_DISABLE_SELF", "不能停用自己的账号", "请由其他管理员操作。")
    ended = 0
    if user.disabled != disabled:
        user.disabled = disabled
        if disabled:
            result = await session.execute(
                update(AccessToken)
                .where(col(AccessToken.user_id) == user.id, col(AccessToken.revoked_at).is_(None))
                .values(revoked_at=func.now())
            )
            ended = int(result.rowcount or 0)  # type: ignore[attr-defined]
        action = "account.disabled" if disabled else "account.enabled"
        audit(session, actor, action, "user", user.id, reason=reason, detail={"sessions_ended": ended}, request=request)
    await session.commit()
    return ended

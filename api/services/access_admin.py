"""Admins assigning permissions to roles and people (8.6.1 e), and unlocking accounts. Every change is audited with
its reason, in the transaction that makes it."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import Actor
from api.errors import Problem
from api.schemas.security import PermissionOut, RolePermissionsOut, UserPermissionOut, UserPermissionsOut
from api.services import lockout
from api.services.audit import audit
from models.common import Role
from models.permissions import Permission
from models.tables import PermissionEntry, RolePermission, User, UserPermission

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
    if effect == "inherit":
        await session.execute(
            delete(UserPermission).where(
                col(UserPermission.user_id) == user.id, col(UserPermission.permission) == str(permission)
            )
        )
    else:
        values = {"granted": effect == "grant", "granted_by": actor.user_id, "granted_at": func.now(), "reason": reason}
        await session.execute(
            insert(UserPermission)
            .values(user_id=user.id, permission=str(permission), **values)
            .on_conflict_do_update(index_elements=["user_id", "permission"], set_=values)
        )
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

"""Fine-grained permissions (8.6.1 e 业务权限管理): what a role holds by default, and each person's exceptions.

A user holds a permission when they have a personal grant, or their role holds it and they have no personal
revocation. Checked on the raw pool like the token, with one statement, only by endpoints that ask for a permission.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import asyncpg
from fastapi import Depends

from api.auth import Actor, ActorDep, require_roles
from api.deps import ContextDep
from api.errors import Problem
from models.common import Role
from models.permissions import PERMISSION_NAMES, Permission

_HOLDS = """
    SELECT COALESCE(
        (SELECT granted FROM user_permissions WHERE user_id = $1 AND permission = $3),
        EXISTS (SELECT FROM role_permissions WHERE role = $2 AND permission = $3))
"""


async def holds(pg: asyncpg.Pool, actor: Actor, permission: Permission) -> bool:
    return bool(await pg.fetchval(_HOLDS, actor.user_id, str(actor.role), str(permission)))


def require_permission(permission: Permission | str) -> Callable[[Actor, ContextDep], Awaitable[Actor]]:
    """A dependency admitting only actors holding `permission` (403 FORBIDDEN naming it otherwise).

    An unknown permission code fails here, when the router is built, not on the first request.
    """
    wanted = Permission(permission)
    name = PERMISSION_NAMES[wanted]

    async def dependency(actor: ActorDep, ctx: ContextDep) -> Actor:
        if not await holds(ctx.pg, actor, wanted):
            raise Problem(
                403,
                "FORBIDDEN",
                "无权执行此操作",
                f"此操作需要“{name}”权限，请联系管理员授权。",
                permission=str(wanted),
            )
        return actor

    return dependency


def role_with_permission(role: Role, permission: Permission) -> Callable[[ContextDep, Actor], Awaitable[Actor]]:
    """A dependency admitting users of `role` (with their profile) who hold `permission`: a doctor whose prescribing
    right an admin took away (8.5.2.4 处方权) is refused like anyone else without it."""
    in_role = require_roles(role)
    holding = require_permission(permission)

    # A default, not Annotated: under postponed annotations FastAPI resolves names from the module, not this closure.
    async def dependency(ctx: ContextDep, actor: Actor = Depends(in_role)) -> Actor:
        return await holding(actor, ctx)

    return dependency


# Prescribing (8.5.2.4) and reviewing prescriptions: the role's work, as long as the person holds the right to it.
PrescriberDep = Annotated[Actor, Depends(role_with_permission(Role.DOCTOR, Permission.RX_PRESCRIBE))]
RxReviewerDep = Annotated[Actor, Depends(role_with_permission(Role.PHARMACIST, Permission.RX_REVIEW))]

"""Who is calling: opaque bearer tokens, checked against `access_tokens` on every request.

Nothing about a token is cached between requests, so a logout or a disabled account takes effect at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Annotated

import asyncpg
import structlog
from anyio import to_thread
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.deps import ContextDep
from api.errors import Problem
from core.passwords import hash_password, new_token, token_digest, verify_password
from models.common import Role
from models.tables import AccessToken, User

TOKEN_URL = "/api/v1/auth/token"

ROLE_NAMES = {
    Role.PATIENT: "患者",
    Role.DOCTOR: "医生",
    Role.PHARMACIST: "药师",
    Role.ADMIN: "管理员",
    Role.FINANCE: "财务",
}
# Roles whose users have a profile row (patients/doctors/pharmacists.user_id); its id is the actor's `ref`.
_PROFILE_ROLES = frozenset({Role.PATIENT, Role.DOCTOR, Role.PHARMACIST})


@dataclass(frozen=True)
class Actor:
    user_id: str
    role: Role
    display_name: str
    # The patient, doctor or pharmacist id of this user; None for admin and finance.
    ref: str | None


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "UNAUTHORIZED", "未登录或登录已失效", detail, headers={"WWW-Authenticate": "Bearer"})


# auto_error=False: a missing token is answered with our problem document, not FastAPI's default body.
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


async def bearer_token(token: Annotated[str | None, Depends(_bearer)]) -> str:
    if not token:
        raise _unauthorized("请先登录。")
    return token


# One statement on every authenticated request, so it runs on the raw pool (see `core.db.make_pool`).
_LIVE_TOKEN = """
    SELECT u.id, u.role, u.display_name, p.id AS patient_id, d.id AS doctor_id, ph.id AS pharmacist_id
      FROM access_tokens t
      JOIN users u ON u.id = t.user_id
      LEFT JOIN patients p ON p.user_id = u.id
      LEFT JOIN doctors d ON d.user_id = u.id
      LEFT JOIN pharmacists ph ON ph.user_id = u.id
     WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > now() AND NOT u.disabled
"""


async def load_actor(pg: asyncpg.Pool, digest: str) -> Actor | None:
    """The actor behind a live token: not expired, not revoked, account not disabled."""
    row = await pg.fetchrow(_LIVE_TOKEN, digest)
    if row is None:
        return None
    role = Role(row["role"])
    ref = {Role.PATIENT: row["patient_id"], Role.DOCTOR: row["doctor_id"], Role.PHARMACIST: row["pharmacist_id"]}
    return Actor(user_id=row["id"], role=role, display_name=row["display_name"], ref=ref.get(role))


async def current_actor(request: Request, ctx: ContextDep, token: Annotated[str, Depends(bearer_token)]) -> Actor:
    actor = await load_actor(ctx.pg, token_digest(token))
    if actor is None:
        raise _unauthorized("登录已过期或已退出，请重新登录。")
    # For the access log line and every log line of this request.
    request.state.actor_id = actor.user_id
    structlog.contextvars.bind_contextvars(actor=actor.user_id)
    return actor


ActorDep = Annotated[Actor, Depends(current_actor)]


def require_roles(*roles: Role) -> Callable[[Actor], Awaitable[Actor]]:
    """A dependency admitting only the given roles (403 FORBIDDEN otherwise).

    For patients, doctors and pharmacists it also guarantees `actor.ref` is set.
    """
    allowed = frozenset(roles)
    names = "、".join(ROLE_NAMES[role] for role in roles)

    async def dependency(actor: ActorDep) -> Actor:
        if actor.role not in allowed:
            raise Problem(403, "FORBIDDEN", "无权执行此操作", f"此操作仅限{names}使用。")
        if actor.role in _PROFILE_ROLES and actor.ref is None:
            raise Problem(403, "PROFILE_MISSING", "账号尚未建立档案", f"该{ROLE_NAMES[actor.role]}账号尚未关联档案。")
        return actor

    return dependency


PatientDep = Annotated[Actor, Depends(require_roles(Role.PATIENT))]
DoctorDep = Annotated[Actor, Depends(require_roles(Role.DOCTOR))]
PharmacistDep = Annotated[Actor, Depends(require_roles(Role.PHARMACIST))]
AdminDep = Annotated[Actor, Depends(require_roles(Role.ADMIN))]
FinanceDep = Annotated[Actor, Depends(require_roles(Role.FINANCE))]


@cache
def _decoy_hash() -> str:
    return hash_password("qihuang-decoy-password")


async def authenticate(session: AsyncSession, username: str, password: str) -> User:
    """The user with these credentials; 401 INVALID_CREDENTIALS alike for an unknown user and a wrong password."""
    user = (await session.execute(select(User).where(col(User.username) == username))).scalar_one_or_none()
    # An unknown user still costs one scrypt, so timing does not tell which usernames exist.
    stored = user.password_hash if user is not None else _decoy_hash()
    # scrypt is CPU-bound: keep it off the event loop.
    matches = await to_thread.run_sync(verify_password, password, stored)
    if user is None or not matches:
        raise Problem(401, "INVALID_CREDENTIALS", "用户名或密码错误", "请检查用户名和密码后重试。")
    if user.disabled:
        raise Problem(403, "ACCOUNT_DISABLED", "账号已停用", "该账号已停用，如有疑问请联系医院。")
    return user


async def issue_token(session: AsyncSession, user_id: str, ttl_seconds: int) -> str:
    """A new opaque token; only its digest is stored."""
    token = new_token()
    now = datetime.now(UTC)
    session.add(
        AccessToken(
            token_hash=token_digest(token),
            user_id=user_id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )
    await session.commit()
    return token


async def revoke_token(session: AsyncSession, token: str) -> None:
    await session.execute(
        update(AccessToken)
        .where(col(AccessToken.token_hash) == token_digest(token), col(AccessToken.revoked_at).is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    await session.commit()

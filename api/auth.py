"""Who is calling: opaque bearer tokens, checked against `access_tokens` on every request.

Nothing about a token is cached between requests, so a logout, a disabled account or an idle timeout takes effect at
once. A token carries when its sign-in happened (`auth_time`, for actions that want a recent one) and its scope: staff
who must use a second factor and have none yet hold a token that can only enrol one; accounts still on an initial
password that someone else chose hold one that can only change it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.deps import ContextDep, SettingsDep
from api.errors import Problem
from core.passwords import new_token, token_digest
from core.settings import Settings
from models.common import Role
from models.tables import AccessToken

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
STAFF_ROLES = frozenset({Role.DOCTOR, Role.PHARMACIST, Role.ADMIN, Role.FINANCE})

FULL_SCOPE = "full"
# The token of a staff member who must use a second factor and has none: it reaches only the enrolment endpoints.
ENROLMENT_SCOPE = "mfa_enrolment"
# The token of a doctor or pharmacist whose registration is not approved yet (8.5.2.2, 8.5.3.2): it reaches only
# their own application (/staff-applications/me), never patients' data, whatever their role's permissions.
APPLICANT_SCOPE = "applicant"
# The token of an account still on its initial password (batch-created staff, who got it from an admin's import):
# it reaches only the password change, which lifts it to the scope the account then has (9.3.1.2.5).
PASSWORD_CHANGE_SCOPE = "password_change"


@dataclass(frozen=True)
class Actor:
    user_id: str
    role: Role
    display_name: str
    # The patient, doctor or pharmacist id of this user; None for admin and finance.
    ref: str | None
    # When this session's credentials were checked.
    auth_time: datetime
    # True while the token may only enrol a second factor.
    enrolment_only: bool
    # True for an applicant's token: it may only reach the application.
    applicant_only: bool = False
    # True while the account's initial password must be changed: the token may only change it.
    password_change_only: bool = False


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "UNAUTHORIZED", "未登录或登录已失效", detail, headers={"WWW-Authenticate": "Bearer"})


# auto_error=False: a missing token is answered with our problem document, not FastAPI's default body.
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


async def bearer_token(token: Annotated[str | None, Depends(_bearer)]) -> str:
    if not token:
        raise _unauthorized("请先登录。")
    return token


def bearer_of(request: Request) -> str:
    """`bearer_token` for a handler that takes no dependencies (booking): the header read as OAuth2PasswordBearer
    reads it, and the same answer for a missing token."""
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("请先登录。")
    return token


# One statement on every authenticated request, so it runs on the raw pool (see `core.db.make_pool`). It also
# refreshes `last_used_at`, but at most once a minute per token, so a busy client does not rewrite its token row on
# every call; concurrent requests of one token skip the row another is refreshing instead of queueing behind it. The
# idle limit ($2 for staff, $3 for patients, in seconds) is therefore exact to within that minute. `LIVE_CALLER` is the
# statement's CTEs, for statements that decide who is asking and do the work in one round trip (booking).
LIVE_CALLER = """
    live AS (
        SELECT u.id, u.role, u.display_name, t.auth_time, t.scope, t.mfa_method,
               p.id AS patient_id, d.id AS doctor_id, ph.id AS pharmacist_id
          FROM access_tokens t
          JOIN users u ON u.id = t.user_id
          LEFT JOIN patients p ON p.user_id = u.id
          LEFT JOIN doctors d ON d.user_id = u.id
          LEFT JOIN pharmacists ph ON ph.user_id = u.id
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > now() AND NOT u.disabled
           AND t.last_used_at > now()
               - make_interval(secs => CASE WHEN u.role = 'patient' THEN $3::float8 ELSE $2::float8 END)
    ), touched AS (
        UPDATE access_tokens SET last_used_at = now()
         WHERE token_hash IN (
               SELECT token_hash FROM access_tokens
                WHERE token_hash = $1 AND last_used_at < now() - interval '1 minute' AND EXISTS (SELECT FROM live)
                  FOR UPDATE SKIP LOCKED)
    )"""
_LIVE_TOKEN = f"WITH {LIVE_CALLER} SELECT * FROM live"


def idle_limits(settings: Settings) -> tuple[float, float]:
    """`LIVE_CALLER`'s $2 and $3."""
    return float(settings.session_idle_staff_s), float(settings.session_idle_patient_s)


def actor_of(row: Mapping[str, Any], settings: Settings, prefix: str = "") -> Actor:
    """The actor from `LIVE_CALLER`'s `live` columns (selected as `{prefix}{column}` when the statement has more)."""
    role = Role(row[f"{prefix}role"])
    ref = {
        Role.PATIENT: row[f"{prefix}patient_id"],
        Role.DOCTOR: row[f"{prefix}doctor_id"],
        Role.PHARMACIST: row[f"{prefix}pharmacist_id"],
    }
    # A full token issued without a second factor before the requirement was switched on is held to it too.
    applicant_only = row[f"{prefix}scope"] == APPLICANT_SCOPE
    password_change_only = row[f"{prefix}scope"] == PASSWORD_CHANGE_SCOPE
    enrolment_only = row[f"{prefix}scope"] == ENROLMENT_SCOPE or (
        settings.mfa_required_for_staff
        and role in STAFF_ROLES
        and row[f"{prefix}mfa_method"] is None
        and not applicant_only
        and not password_change_only
    )
    return Actor(
        user_id=row[f"{prefix}id"],
        role=role,
        display_name=row[f"{prefix}display_name"],
        ref=ref.get(role),
        auth_time=row[f"{prefix}auth_time"],
        enrolment_only=enrolment_only,
        applicant_only=applicant_only,
        password_change_only=password_change_only,
    )


async def load_actor(pg: asyncpg.Pool, digest: str, settings: Settings) -> Actor | None:
    """The actor behind a live token: not expired, not idle too long, not revoked, account not disabled."""
    row = await pg.fetchrow(_LIVE_TOKEN, digest, *idle_limits(settings))
    return None if row is None else actor_of(row, settings)


def signed_in(request: Request, actor: Actor | None) -> Actor:
    """The caller of this request, or 401; named on the request's log lines."""
    if actor is None:
        raise _unauthorized("登录已过期或已退出，请重新登录。")
    # For the access log line and every log line of this request.
    request.state.actor_id = actor.user_id
    structlog.contextvars.bind_contextvars(actor=actor.user_id)
    return actor


async def session_actor(request: Request, ctx: ContextDep, token: Annotated[str, Depends(bearer_token)]) -> Actor:
    """The caller, whatever their token's scope: for logging out and enrolling a second factor."""
    return signed_in(request, await load_actor(ctx.pg, token_digest(token), ctx.settings))


async def current_actor(actor: Annotated[Actor, Depends(session_actor)]) -> Actor:
    return full_scope(actor)


def past_initial_password(actor: Actor) -> Actor:
    """403 for a token that may only change the account's initial password."""
    if actor.password_change_only:
        raise Problem(
            403,
            "PASSWORD_CHANGE_REQUIRED",
            "请先修改初始密码",
            "该账号仍在使用管理员设置的初始密码：请先修改密码（POST /api/v1/auth/password），再使用其他功能。",
        )
    return actor


async def limited_actor(actor: Annotated[Actor, Depends(session_actor)]) -> Actor:
    """The caller, with a full token or one limited to what these endpoints are for (enrolling a second factor, an
    applicant's registration), but not one that must change its initial password first."""
    return past_initial_password(actor)


def full_scope(actor: Actor) -> Actor:
    """403 for a token that may only change an initial password, reach an applicant's registration or enrol a second
    factor."""
    past_initial_password(actor)
    if actor.applicant_only:
        raise Problem(
            403,
            "STAFF_NOT_APPROVED",
            "注册资质尚未审核通过",
            "您的注册申请尚未审核通过，审核通过后请重新登录。",
        )
    if actor.enrolment_only:
        raise Problem(
            403,
            "MFA_ENROLMENT_REQUIRED",
            "请先绑定第二重身份验证",
            "工作人员账号须启用双因素认证：请先绑定验证器应用或短信验证，再使用其他功能。",
        )
    return actor


async def password_actor(actor: Annotated[Actor, Depends(session_actor)]) -> Actor:
    """The caller of the password change: a full token, or one held to changing its initial password."""
    return actor if actor.password_change_only else full_scope(actor)


ActorDep = Annotated[Actor, Depends(current_actor)]
EnrollingActorDep = Annotated[Actor, Depends(limited_actor)]
PasswordActorDep = Annotated[Actor, Depends(password_actor)]


def _require_recent(actor: Actor, settings: Settings) -> Actor:
    """401 REAUTH_REQUIRED unless the session's sign-in is at most `reauth_max_age_s` old."""
    if datetime.now(UTC) - actor.auth_time > timedelta(seconds=settings.reauth_max_age_s):
        minutes = max(1, settings.reauth_max_age_s // 60)
        raise Problem(
            401,
            "REAUTH_REQUIRED",
            "需要重新验证身份",
            f"该操作须在登录后 {minutes} 分钟内进行，请重新登录后再试。",
            headers={"WWW-Authenticate": "Bearer"},
            max_age=settings.reauth_max_age_s,
        )
    return actor


async def recent_actor(actor: ActorDep, settings: SettingsDep) -> Actor:
    return _require_recent(actor, settings)


async def recent_enrolling_actor(actor: EnrollingActorDep, settings: SettingsDep) -> Actor:
    return _require_recent(actor, settings)


async def recent_password_actor(actor: PasswordActorDep, settings: SettingsDep) -> Actor:
    return _require_recent(actor, settings)


# For sensitive actions (9.3.1.2.4): password change, permission changes; and second-factor enrolment.
RecentActorDep = Annotated[Actor, Depends(recent_actor)]
RecentEnrollingActorDep = Annotated[Actor, Depends(recent_enrolling_actor)]
RecentPasswordActorDep = Annotated[Actor, Depends(recent_password_actor)]


def require_roles(*roles: Role) -> Callable[[Actor], Awaitable[Actor]]:
    """A dependency admitting only the given roles (403 FORBIDDEN otherwise).

    For patients, doctors and pharmacists it also guarantees `actor.ref` is set.
    """

    async def dependency(actor: ActorDep) -> Actor:
        return check_role(actor, *roles)

    return dependency


def check_role(actor: Actor, *roles: Role) -> Actor:
    """What `require_roles` checks, for a handler that learns who is asking in its own statement."""
    if actor.role not in roles:
        names = "、".join(ROLE_NAMES[role] for role in roles)
        raise Problem(403, "FORBIDDEN", "无权执行此操作", f"此操作仅限{names}使用。")
    if actor.role in _PROFILE_ROLES and actor.ref is None:
        raise Problem(403, "PROFILE_MISSING", "账号尚未建立档案", f"该{ROLE_NAMES[actor.role]}账号尚未关联档案。")
    return actor


PatientDep = Annotated[Actor, Depends(require_roles(Role.PATIENT))]
DoctorDep = Annotated[Actor, Depends(require_roles(Role.DOCTOR))]
PharmacistDep = Annotated[Actor, Depends(require_roles(Role.PHARMACIST))]
AdminDep = Annotated[Actor, Depends(require_roles(Role.ADMIN))]
FinanceDep = Annotated[Actor, Depends(require_roles(Role.FINANCE))]
# Doctors and administrators: the staff who run schedules and book for patients who cannot.
StaffDep = Annotated[Actor, Depends(require_roles(Role.DOCTOR, Role.ADMIN))]


async def issue_token(
    session: AsyncSession, user_id: str, ttl_seconds: int, *, scope: str = FULL_SCOPE, mfa_method: str | None = None
) -> str:
    """A new opaque token; only its digest is stored. Commits the session, with whatever the caller added to it."""
    token = new_token()
    now = datetime.now(UTC)
    session.add(
        AccessToken(
            token_hash=token_digest(token),
            user_id=user_id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
            last_used_at=now,
            auth_time=now,
            scope=scope,
            mfa_method=mfa_method,
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

"""Signing in (9.3.1.2.2–9.3.1.2.3): password, lockout, the second step for users with a second factor, the token.

Every failure, refusal and lock is audited, and so is every completed sign-in. Before a sign-in completes there is no
authenticated actor: those rows name the account as their subject (or, for an unknown name, its throttle key).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

from anyio import to_thread
from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import APPLICANT_SCOPE, ENROLMENT_SCOPE, FULL_SCOPE, PASSWORD_CHANGE_SCOPE, STAFF_ROLES, issue_token
from api.context import AppContext
from api.errors import Problem
from api.schemas.auth import MfaChallengeOut, MfaLoginIn, SmsSentOut, TokenOut
from api.services import lockout, mfa
from api.services.audit import audit
from core.crypto.sm import mask
from core.passwords import hash_password, verify_password
from core.settings import Settings
from models.common import Role
from models.tables import MfaFactor, StaffApplication, User

Subject = tuple[str, str]


@cache
def _decoy_hash() -> str:
    return hash_password("qihuang-decoy-password")


def _subject(user: User | None, key: str) -> Subject:
    return ("user", user.id) if user is not None else ("login", key)


def _disabled() -> Problem:
    return Problem(403, "ACCOUNT_DISABLED", "账号已停用", "该账号已停用，如有疑问请联系医院。")


async def record_failure(
    session: AsyncSession, settings: Settings, request: Request, key: str, subject: Subject, factor: str
) -> None:
    """Count and audit one failed credential check, committing both; raises 423 if this failure locks the name."""
    until = await lockout.count_failure(session, key, settings)
    audit(session, None, "auth.login_failed", *subject, detail={"factor": factor}, request=request)
    if until is not None:
        detail = {"locked_until": until.isoformat(), "failures": settings.login_max_failures}
        audit(session, None, "auth.locked", *subject, detail=detail, request=request)
    await session.commit()
    if until is not None:
        raise lockout.locked_problem(until)


async def _refuse_if_locked(session: AsyncSession, request: Request, key: str, subject: Subject) -> None:
    until = await lockout.locked_until(session, key)
    if until is not None:
        audit(session, None, "auth.login_refused", *subject, detail={"why": "locked"}, request=request)
        await session.commit()
        raise lockout.locked_problem(until)


async def check_password(
    session: AsyncSession, settings: Settings, request: Request, username: str, password: str
) -> User:
    """The user with these credentials. 401 INVALID_CREDENTIALS alike for an unknown name and a wrong password, and
    423 ACCOUNT_LOCKED alike for both once the name has failed too often; 403 for a disabled account."""
    key = lockout.throttle_key(username)
    user = (await session.execute(select(User).where(col(User.username) == username))).scalar_one_or_none()
    subject = _subject(user, key)
    # A locked name is refused before its password is looked at: guesses during the lock teach nothing.
    await _refuse_if_locked(session, request, key, subject)
    # An unknown user still costs one scrypt, so timing does not tell which usernames exist.
    stored = user.password_hash if user is not None else _decoy_hash()
    # scrypt is CPU-bound: keep it off the event loop.
    matches = await to_thread.run_sync(verify_password, password, stored)
    if user is None or not matches:
        await record_failure(session, settings, request, key, subject, "password")
        raise Problem(401, "INVALID_CREDENTIALS", "用户名或密码错误", "请检查用户名和密码后重试。")
    if user.disabled:
        audit(session, None, "auth.login_refused", *subject, detail={"why": "disabled"}, request=request)
        await session.commit()
        raise _disabled()
    return user


async def _finish(
    session: AsyncSession, settings: Settings, request: Request, user: User, mfa_method: str | None
) -> TokenOut:
    # Failures before a complete sign-in no longer count; they are cleared only now, so a known password does not
    # reset the count of wrong second-factor codes.
    await lockout.clear_failures(session, lockout.throttle_key(user.username))
    scope = await token_scope(session, settings, user, mfa_method)
    audit(session, None, "auth.login", "user", user.id, detail={"mfa": mfa_method, "scope": scope}, request=request)
    token = await issue_token(session, user.id, settings.token_ttl_seconds, scope=scope, mfa_method=mfa_method)
    return TokenOut(access_token=token, expires_in=settings.token_ttl_seconds, scope=scope)


async def token_scope(session: AsyncSession, settings: Settings, user: User, mfa_method: str | None) -> str:
    """What a session of this account may reach (api/auth.py scopes): the first that applies of an initial password
    to change, a registration awaiting approval, a second factor to enrol; else everything its role allows."""
    if user.must_change_password:
        return PASSWORD_CHANGE_SCOPE
    if await _awaiting_approval(session, user.id):
        return APPLICANT_SCOPE
    must_enrol = settings.mfa_required_for_staff and Role(user.role) in STAFF_ROLES and mfa_method is None
    return ENROLMENT_SCOPE if must_enrol else FULL_SCOPE


async def _awaiting_approval(session: AsyncSession, user_id: str) -> bool:
    """A doctor or pharmacist whose registration is not approved: their sign-ins reach only the application."""
    status = await session.scalar(select(col(StaffApplication.status)).where(col(StaffApplication.user_id) == user_id))
    return status is not None and status != "approved"


async def sign_in(
    session: AsyncSession, settings: Settings, request: Request, username: str, password: str
) -> TokenOut | MfaChallengeOut:
    """Step one: a token, or for a user with a second factor a challenge to answer at step two."""
    user = await check_password(session, settings, request, username, password)
    methods = mfa.enrolled_methods(await session.get(MfaFactor, user.id))
    if not methods:
        return await _finish(session, settings, request, user, None)
    challenge_id = await mfa.open_challenge(session, settings, user.id, mfa.LOGIN)
    await session.commit()
    return MfaChallengeOut(challenge_id=challenge_id, methods=methods, expires_in=settings.mfa_challenge_ttl_s)


async def send_login_code(session: AsyncSession, ctx: AppContext, challenge_id: str) -> SmsSentOut:
    challenge = await mfa.live_challenge(session, challenge_id, mfa.LOGIN)
    factor = await session.get(MfaFactor, challenge.user_id)
    phone = ctx.cipher.decrypt(mfa.PHONE_COLUMN, factor.sms_phone_enc) if factor is not None else None
    if phone is None:
        raise Problem(409, "SMS_NOT_ENROLLED", "未绑定短信验证", "该账号未绑定接收验证码的手机，请使用验证器应用。")
    await mfa.send_code(session, ctx.adapters.notifier, challenge, phone, ctx.settings)
    return SmsSentOut(sent_to=mask(phone) or "", resend_after=mfa.RESEND_AFTER_S)


async def complete_sign_in(session: AsyncSession, ctx: AppContext, request: Request, body: MfaLoginIn) -> TokenOut:
    """Step two: the challenge and a code of one of the user's factors. Wrong codes count toward the lockout."""
    challenge = await mfa.live_challenge(session, body.challenge_id, mfa.LOGIN)
    user = await session.get(User, challenge.user_id)
    assert user is not None  # a foreign key
    key = lockout.throttle_key(user.username)
    await _refuse_if_locked(session, request, key, ("user", user.id))
    if user.disabled:
        raise _disabled()
    if body.method == mfa.TOTP:
        factor = await mfa.factor_for_update(session, user.id)
        accepted = factor is not None and mfa.totp_matches(ctx.cipher, factor, body.code)
    else:
        accepted = mfa.sms_code_matches(challenge, body.code)
    if not accepted:
        challenge.attempts += 1
        await record_failure(session, ctx.settings, request, key, ("user", user.id), body.method)
        raise mfa.wrong_code()
    challenge.consumed_at = datetime.now(UTC)
    return await _finish(session, ctx.settings, request, user, body.method)

"""Enrolling second factors: an authenticator app (TOTP) or a phone for SMS codes.

A factor counts only once the user has proved it with a code. Proving it also lifts the current token's enrolment-only
scope: the user has just shown both factors.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import Request
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import APPLICANT_SCOPE, FULL_SCOPE, STAFF_ROLES, Actor
from api.context import AppContext
from api.schemas.mfa import MfaStatusOut, SmsEnrolmentOut, TotpEnrolmentOut
from api.services import mfa
from api.services.audit import audit
from core.crypto.sm import mask
from core.passwords import token_digest
from core.settings import Settings
from core.totp import new_secret, otpauth_uri, time_step
from models.tables import AccessToken, MfaFactor, User


def status(factor: MfaFactor | None, actor: Actor, settings: Settings) -> MfaStatusOut:
    return MfaStatusOut(
        methods=mfa.enrolled_methods(factor),
        required=settings.mfa_required_for_staff and actor.role in STAFF_ROLES,
        totp_pending=factor is not None and factor.totp_pending_enc is not None,
    )


async def _factor(session: AsyncSession, user_id: str) -> MfaFactor:
    factor = await mfa.factor_for_update(session, user_id)
    if factor is None:
        factor = MfaFactor(user_id=user_id)
        session.add(factor)
    return factor


async def _upgrade_token(session: AsyncSession, token: str, method: str) -> None:
    # An applicant's token stays an applicant's: a second factor proves who they are, not that they were approved.
    await session.execute(
        update(AccessToken)
        .where(col(AccessToken.token_hash) == token_digest(token), col(AccessToken.scope) != APPLICANT_SCOPE)
        .values(scope=FULL_SCOPE, mfa_method=method)
    )


async def start_totp(session: AsyncSession, ctx: AppContext, request: Request, actor: Actor) -> TotpEnrolmentOut:
    """A new secret, pending until confirmed; an app already enrolled keeps working until then."""
    user = await session.get(User, actor.user_id)
    assert user is not None
    secret = new_secret()
    factor = await _factor(session, actor.user_id)
    factor.totp_pending_enc = ctx.cipher.encrypt(mfa.TOTP_COLUMN, secret)
    audit(session, actor, "mfa.totp_enrolment_started", "user", actor.user_id, request=request)
    await session.commit()
    uri = otpauth_uri(secret, account=user.username, issuer=ctx.settings.hospital_name)
    return TotpEnrolmentOut(secret=secret, otpauth_uri=uri)


async def confirm_totp(
    session: AsyncSession, ctx: AppContext, request: Request, actor: Actor, token: str, code: str
) -> MfaStatusOut:
    factor = await mfa.factor_for_update(session, actor.user_id)
    if factor is None or factor.totp_pending_enc is None:
        raise mfa.no_pending_enrolment()
    # The replay guard belongs to the old secret; the new one starts afresh from the step before now.
    factor.totp_last_step = time_step(time.time()) - 2
    if not mfa.totp_matches(ctx.cipher, factor, code, pending=True):
        raise mfa.wrong_code(422)
    factor.totp_secret_enc, factor.totp_pending_enc = factor.totp_pending_enc, None
    factor.totp_enrolled_at = datetime.now(UTC)
    await _upgrade_token(session, token, mfa.TOTP)
    audit(session, actor, "mfa.totp_enrolled", "user", actor.user_id, request=request)
    await session.commit()
    return status(factor, actor, ctx.settings)


async def start_sms(
    session: AsyncSession, ctx: AppContext, request: Request, actor: Actor, phone: str
) -> SmsEnrolmentOut:
    """Text a code to the phone; it is bound once the code comes back (`confirm_sms`)."""
    phone_enc = ctx.cipher.encrypt(mfa.PHONE_COLUMN, phone)
    challenge_id = await mfa.open_challenge(
        session, ctx.settings, actor.user_id, mfa.SMS_ENROLMENT, phone_enc=phone_enc
    )
    audit(session, actor, "mfa.sms_enrolment_started", "user", actor.user_id, request=request)
    await session.commit()
    challenge = await mfa.live_challenge(session, challenge_id, mfa.SMS_ENROLMENT)
    await mfa.send_code(session, ctx.adapters.notifier, challenge, phone, ctx.settings)
    return SmsEnrolmentOut(challenge_id=challenge_id, sent_to=mask(phone) or "", resend_after=mfa.RESEND_AFTER_S)


async def confirm_sms(
    session: AsyncSession,
    ctx: AppContext,
    request: Request,
    actor: Actor,
    token: str,
    challenge_id: str,
    code: str,
) -> MfaStatusOut:
    challenge = await mfa.live_challenge(session, challenge_id, mfa.SMS_ENROLMENT)
    if challenge.user_id != actor.user_id:
        raise mfa.no_pending_enrolment()
    if not mfa.sms_code_matches(challenge, code):
        challenge.attempts += 1
        await session.commit()
        raise mfa.wrong_code(422)
    challenge.consumed_at = datetime.now(UTC)
    factor = await _factor(session, actor.user_id)
    factor.sms_phone_enc = challenge.phone_enc
    factor.sms_enrolled_at = datetime.now(UTC)
    await _upgrade_token(session, token, mfa.SMS)
    audit(session, actor, "mfa.sms_enrolled", "user", actor.user_id, request=request)
    await session.commit()
    return status(factor, actor, ctx.settings)

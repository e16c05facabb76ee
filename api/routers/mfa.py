"""Enrolling second factors (9.3.1.2.3). These endpoints also answer tokens that may only enrol (`mfa_enrolment`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from api import auth
from api.deps import ContextDep, SessionDep, SettingsDep
from api.errors import problem_responses
from api.schemas.mfa import CodeIn, MfaStatusOut, SmsConfirmIn, SmsEnrolIn, SmsEnrolmentOut, TotpEnrolmentOut
from api.services import mfa_enrolment
from models.tables import MfaFactor

router = APIRouter(prefix="/auth/mfa", tags=["auth"])

TokenDep = Annotated[str, Depends(auth.bearer_token)]


@router.get("", response_model=MfaStatusOut, responses=problem_responses(401), summary="双因素认证状态")
async def mfa_status(actor: auth.EnrollingActorDep, session: SessionDep, settings: SettingsDep) -> MfaStatusOut:
    return mfa_enrolment.status(await session.get(MfaFactor, actor.user_id), actor, settings)


@router.post(
    "/totp",
    response_model=TotpEnrolmentOut,
    responses=problem_responses(401),
    summary="绑定验证器应用：生成密钥",
)
async def start_totp(
    request: Request, actor: auth.RecentEnrollingActorDep, session: SessionDep, ctx: ContextDep
) -> TotpEnrolmentOut:
    """Show `otpauth_uri` as a QR code (or `secret` for typing in), then confirm with a code the app shows. Needs a
    recent sign-in (401 `REAUTH_REQUIRED`). An app enrolled earlier keeps working until the new one is confirmed."""
    return await mfa_enrolment.start_totp(session, ctx, request, actor)


@router.post(
    "/totp/confirm",
    response_model=MfaStatusOut,
    responses=problem_responses(401, 409, 422),
    summary="绑定验证器应用：确认动态码",
)
async def confirm_totp(
    body: CodeIn, request: Request, actor: auth.EnrollingActorDep, session: SessionDep, ctx: ContextDep, token: TokenDep
) -> MfaStatusOut:
    """422 `MFA_CODE_INVALID` for a wrong code. Once confirmed, the current token is no longer enrolment-only."""
    return await mfa_enrolment.confirm_totp(session, ctx, request, actor, token, body.code)


@router.post(
    "/sms",
    response_model=SmsEnrolmentOut,
    responses=problem_responses(401, 422, 429, 503),
    summary="绑定短信验证：发送验证码",
)
async def start_sms(
    body: SmsEnrolIn, request: Request, actor: auth.RecentEnrollingActorDep, session: SessionDep, ctx: ContextDep
) -> SmsEnrolmentOut:
    """Needs a recent sign-in (401 `REAUTH_REQUIRED`). The phone is bound once its code is confirmed."""
    return await mfa_enrolment.start_sms(session, ctx, request, actor, body.phone)


@router.post(
    "/sms/confirm",
    response_model=MfaStatusOut,
    responses=problem_responses(401, 409, 422),
    summary="绑定短信验证：确认验证码",
)
async def confirm_sms(
    body: SmsConfirmIn,
    request: Request,
    actor: auth.EnrollingActorDep,
    session: SessionDep,
    ctx: ContextDep,
    token: TokenDep,
) -> MfaStatusOut:
    return await mfa_enrolment.confirm_sms(session, ctx, request, actor, token, body.challenge_id, body.code)

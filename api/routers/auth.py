"""Log in (OAuth2 password form → opaque bearer token, with a second step for users with a second factor), log out,
change the password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from api import auth
from api.deps import ContextDep, SessionDep, SettingsDep
from api.errors import problem_responses
from api.schemas.auth import MfaChallengeOut, MfaLoginIn, PasswordChangeIn, SmsCodeIn, SmsSentOut, TokenOut
from api.services.password_change import change_password
from api.services.sign_in import complete_sign_in, send_login_code, sign_in

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/token",
    response_model=TokenOut | MfaChallengeOut,
    responses=problem_responses(401, 403, 422, 423),
    summary="登录，换取访问令牌",
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, session: SessionDep, settings: SettingsDep
) -> TokenOut | MfaChallengeOut:
    """Wrong password and unknown user get the same 401 `INVALID_CREDENTIALS`; a disabled account 403. An account on
    an initial password (batch-created staff) gets a token with `scope` `password_change`: change it first.

    After `login_max_failures` failures within the window the name is locked: 423 `ACCOUNT_LOCKED` with
    `locked_until`, for unknown names alike. A user with a second factor gets `mfa_required` and a `challenge_id`
    instead of a token: finish at `POST /auth/token/mfa`. Staff who must use a second factor and have none get a
    token with `scope` `mfa_enrolment`, which only reaches `/auth/mfa/*`.
    """
    return await sign_in(session, settings, request, form.username, form.password)


@router.post(
    "/token/mfa/sms",
    response_model=SmsSentOut,
    responses=problem_responses(401, 409, 422, 429, 503),
    summary="登录第二步：发送短信验证码",
)
async def send_sms_code(body: SmsCodeIn, session: SessionDep, ctx: ContextDep) -> SmsSentOut:
    """Text a code to the phone bound for SMS verification; again after 60 seconds at the earliest, 3 times at most."""
    return await send_login_code(session, ctx, body.challenge_id)


@router.post(
    "/token/mfa",
    response_model=TokenOut,
    responses=problem_responses(401, 403, 422, 423),
    summary="登录第二步：提交动态码或短信验证码",
)
async def login_second_step(body: MfaLoginIn, request: Request, session: SessionDep, ctx: ContextDep) -> TokenOut:
    """401 `MFA_CODE_INVALID` for a wrong code (it counts toward the lock like a wrong password); 401
    `MFA_CHALLENGE_INVALID` once the challenge is expired, used, or has had 5 wrong codes."""
    return await complete_sign_in(session, ctx, request, body)


@router.post(
    "/logout",
    status_code=204,
    dependencies=[Depends(auth.session_actor)],
    responses=problem_responses(401),
    summary="退出登录，使当前令牌失效",
)
async def logout(session: SessionDep, token: Annotated[str, Depends(auth.bearer_token)]) -> Response:
    await auth.revoke_token(session, token)
    return Response(status_code=204)


@router.post(
    "/password",
    status_code=204,
    responses=problem_responses(401, 403, 422, 423),
    summary="修改密码",
)
async def password(
    body: PasswordChangeIn,
    request: Request,
    actor: auth.RecentPasswordActorDep,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str, Depends(auth.bearer_token)],
) -> Response:
    """Needs a sign-in within the last minutes (401 `REAUTH_REQUIRED` otherwise) and the current password (403
    `WRONG_PASSWORD`, counted toward the lock). 422 `WEAK_PASSWORD` lists every complexity rule the new one breaks.
    Every other session of the account is logged out; this one stays. A token of `scope` `password_change` (an
    account on an initial password) reaches only this endpoint; the change lifts it to the scope the account now has
    (`full`, or `applicant` for a registration not yet approved, or `mfa_enrolment`)."""
    await change_password(session, settings, request, actor, token, body.old_password, body.new_password)
    return Response(status_code=204)

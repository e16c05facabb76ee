"""Log in (OAuth2 password form → opaque bearer token) and log out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import OAuth2PasswordRequestForm

from api import auth
from api.deps import SessionDep, SettingsDep
from api.errors import problem_responses
from api.schemas.auth import TokenOut

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/token",
    response_model=TokenOut,
    responses=problem_responses(401, 403, 422),
    summary="登录，换取访问令牌",
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, settings: SettingsDep
) -> TokenOut:
    """Wrong password and unknown user get the same 401 `INVALID_CREDENTIALS`; a disabled account 403."""
    user = await auth.authenticate(session, form.username, form.password)
    token = await auth.issue_token(session, user.id, settings.token_ttl_seconds)
    return TokenOut(access_token=token, expires_in=settings.token_ttl_seconds)


@router.post(
    "/logout",
    status_code=204,
    dependencies=[Depends(auth.current_actor)],
    responses=problem_responses(401),
    summary="退出登录，使当前令牌失效",
)
async def logout(session: SessionDep, token: Annotated[str, Depends(auth.bearer_token)]) -> Response:
    await auth.revoke_token(session, token)
    return Response(status_code=204)

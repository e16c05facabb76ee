"""Codec server for the Temporal UI and CLI: `POST …/encode` and `POST …/decode` in Temporal's remote codec protocol
(a `Payloads` message as protobuf JSON in, the same out), so operators can read the SM4-sealed payloads of a flow.

Decoding shows patient data, so only admins may call it, and every decode is written to the audit trail (who, which
namespace, how many payloads; never their content).

Pointing tools at it (the tools append `/encode` and `/decode` themselves):
- CLI: `temporal workflow show -w <id> --codec-endpoint https://<api>/api/v1/temporal-codec
  --codec-auth "Bearer <admin token>"` (token from `POST /api/v1/auth/token`).
- Temporal UI: set the codec endpoint to `https://<api>/api/v1/temporal-codec` (UI server config `codec.endpoint`,
  env `TEMPORAL_CODEC_ENDPOINT`, or per browser in the UI's codec server settings) and add the UI's address to
  `QIHUANG_TEMPORAL_UI_ORIGINS`. The UI itself sends `Authorization` only with "pass access token" on, only to an
  https endpoint, and then the token of its own OIDC login, which this API does not accept: so in production the
  endpoint is reached through the operators' gateway, which signs the operator in and adds their admin bearer token.
- `make dev`: the dev server's UI is started with this endpoint (workers/devstack.py), and temporal-dev.yml sets
  `QIHUANG_TEMPORAL_CODEC_OPEN_LOOPBACK`, which lets callers on this machine decode without a token (still audited).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.security import OAuth2PasswordBearer
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from api.auth import TOKEN_URL, Actor, bearer_token, current_actor, require_roles, session_actor
from api.deps import ContextDep, SessionDep, SettingsDep, TemporalDep
from api.errors import Problem, problem_responses
from api.services.audit import audit
from core.payload_codec import is_encrypted
from core.settings import Settings
from models.common import Role

router = APIRouter(prefix="/temporal-codec", tags=["temporal"])

_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
_admin_only = require_roles(Role.ADMIN)
# The headers the UI and CLI send; preflight answers may be cached by the browser for this long.
_ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"
_PREFLIGHT_MAX_AGE_S = "600"

_PAYLOADS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "temporal.api.common.v1.Payloads 的 protobuf JSON：metadata 的值与 data 均为 base64",
                    "properties": {
                        "payloads": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                                    "data": {"type": "string"},
                                },
                            },
                        }
                    },
                }
            }
        },
    }
}


def _from_loopback(request: Request) -> bool:
    if request.client is None:
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


async def codec_operator(
    request: Request, ctx: ContextDep, token: Annotated[str | None, Depends(_bearer)]
) -> Actor | None:
    """The admin calling; None for a tokenless caller on this machine where the development switch allows that."""
    if token is None and ctx.settings.temporal_codec_open_loopback and _from_loopback(request):
        return None
    actor = await current_actor(await session_actor(request, ctx, await bearer_token(token)))
    return await _admin_only(actor)


OperatorDep = Annotated[Actor | None, Depends(codec_operator)]


async def payload_codec(temporal: TemporalDep) -> PayloadCodec:
    """The codec of the API's own Temporal client, so this server opens exactly what the API and workers seal."""
    codec = temporal.data_converter.payload_codec
    if codec is None:
        raise RuntimeError("the API's Temporal client was built without core.temporal.data_converter")
    return codec


CodecDep = Annotated[PayloadCodec, Depends(payload_codec)]


def _cors_headers(request: Request, settings: Settings) -> dict[str, str]:
    """Only the configured UI pages may read the answers: decoded payloads must not reach any other site's script."""
    origin = request.headers.get("origin")
    if origin is None or origin not in settings.temporal_ui_origins:
        return {"Vary": "Origin"}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


async def _read_payloads(request: Request) -> Payloads:
    try:
        return json_format.Parse(await request.body(), Payloads(), ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError):  # Parse decodes the bytes as UTF-8 before parsing
        raise Problem(
            400, "MALFORMED_PAYLOADS", "请求体不是有效的 Payloads", "请求体应为 Payloads 的 protobuf JSON。"
        ) from None


async def _convert(
    request: Request, settings: Settings, convert: Callable[[Sequence[Payload]], Awaitable[list[Payload]]]
) -> tuple[Payloads, Response]:
    payloads = await _read_payloads(request)
    try:
        converted = Payloads(payloads=await convert(payloads.payloads))
    except ValueError as exc:
        raise Problem(400, "PAYLOAD_UNREADABLE", "无法解密载荷", str(exc)) from None
    response = Response(
        json_format.MessageToJson(converted, indent=None),
        media_type="application/json",
        headers=_cors_headers(request, settings),
    )
    return payloads, response


@router.post(
    "/encode",
    responses=problem_responses(400, 401, 403),
    summary="加密 Temporal 载荷（codec server）",
    openapi_extra=_PAYLOADS_BODY,
    dependencies=[Depends(codec_operator)],
)
async def encode(request: Request, codec: CodecDep, settings: SettingsDep) -> Response:
    """Seal payloads with the current key, as the workers would (the UI uses it for signals and queries it sends)."""
    _, response = await _convert(request, settings, codec.encode)
    return response


@router.post(
    "/decode",
    responses=problem_responses(400, 401, 403, 422),
    summary="解密 Temporal 载荷（codec server，仅管理员，留审计）",
    openapi_extra=_PAYLOADS_BODY,
)
async def decode(
    request: Request,
    operator: OperatorDep,
    codec: CodecDep,
    settings: SettingsDep,
    session: SessionDep,
    x_namespace: Annotated[str | None, Header(max_length=100)] = None,
) -> Response:
    """Open payloads sealed with any configured key; payloads that were never sealed come back unchanged."""
    payloads, response = await _convert(request, settings, codec.decode)
    # Committed before the answer leaves: no decoded payload without its audit row.
    audit(
        session,
        operator,
        "temporal.payloads_decoded",
        "temporal_namespace",
        x_namespace or settings.temporal_namespace,
        reason=None if operator else "开发环境本机免登录解密",
        detail={
            "payloads": len(payloads.payloads),
            "encrypted": sum(is_encrypted(payload) for payload in payloads.payloads),
        },
        request=request,
    )
    await session.commit()
    return response


@router.options("/{operation}", include_in_schema=False)
async def preflight(operation: Literal["encode", "decode"], request: Request, settings: SettingsDep) -> Response:
    """The browser asks before the UI's cross-origin POST (it carries JSON and X-Namespace)."""
    headers = _cors_headers(request, settings)
    if "Access-Control-Allow-Origin" in headers:
        headers |= {
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": _ALLOWED_HEADERS,
            "Access-Control-Max-Age": _PREFLIGHT_MAX_AGE_S,
        }
    return Response(status_code=204, headers=headers)

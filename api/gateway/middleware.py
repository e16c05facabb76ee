"""The gateway in front of /api/v1/integration/: every call is verified before routing, so no handler (or dependency)
runs for a caller that is not a registered, active application with a valid, fresh signature within its rate limit.

Checks, cheapest first: header syntax, the app (one indexed read), the timestamp window, the SM2 signature over the
canonical request (see `protocol`), then one statement that uses the nonce and counts the call against the app's
limit. An encrypted body is opened only after all of that. The handler then sees the plain body, and the verified
caller in `request.state.integration_caller`; the app's breakers are in `request.state.breakers`.

Plain ASGI (like api.middleware), so the handler runs in the same context and the body is read exactly once.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.context import AppContext
from api.errors import Problem, problem_response
from api.gateway import limits, protocol, store
from api.gateway.refusals import Refusal, handle_refusal
from api.metrics import GATEWAY_RATE_LIMITED, breaker_changed
from api.resilience import POSTGRES_OUTAGES, Breakers
from core.crypto.sm2 import InvalidSignature, Sm2PublicKey


@dataclass(frozen=True)
class IntegrationCaller:
    """The application a verified call came from."""

    app_id: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class _Verified:
    caller: IntegrationCaller
    nonce: str
    body: bytes
    # The app's SM4 key when the call is encrypted: the body above is already opened with it, the answer is sealed.
    sm4_key: bytes | None


@lru_cache(maxsize=256)
def _public_key(pem: str) -> Sm2PublicKey:
    # Keyed by the PEM itself, so a rotated key is simply another entry; parsing is the part worth saving.
    return Sm2PublicKey.from_pem(pem.encode())


class _BodyTooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            message = await receive()
        except HTTPException as exc:  # raised by BodySizeLimitMiddleware's receive past the limit
            raise _BodyTooLarge from exc
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _target(scope: Scope) -> str:
    raw_path = scope.get("raw_path") or scope["path"].encode()
    return protocol.request_target(raw_path.decode("latin-1"), scope.get("query_string", b"").decode("latin-1"))


class IntegrationGateway:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.breakers = Breakers(on_change=breaker_changed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(protocol.PREFIX):
            await self.app(scope, receive, send)
            return
        ctx: AppContext = scope["app"].state.ctx
        try:
            verified = await self._verify(ctx, scope, receive)
        except _Disconnected:
            return
        except _BodyTooLarge:
            problem = Problem(413, "PAYLOAD_TOO_LARGE", "请求内容过大", "请求体超过了允许的大小。")
            await self._answer(problem, scope, receive, send)
            return
        except Refusal as refusal:
            await handle_refusal(ctx, self.breakers, scope, refusal)
            await self._answer(refusal, scope, receive, send)
            return
        except Problem as problem:  # 429 rate limited, 503 dependency unavailable
            await self._answer(problem, scope, receive, send)
            return

        state = scope.setdefault("state", {})
        state["integration_caller"] = verified.caller
        state["breakers"] = self.breakers
        if verified.sm4_key is not None:
            # The handler reads the opened body, so the declared length must be the plaintext's.
            headers = MutableHeaders(scope=scope)
            headers["content-length"] = str(len(verified.body))
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": verified.body, "more_body": False}
            return await receive()

        if verified.sm4_key is None:
            await self.app(scope, replay, send)
        else:
            aad = protocol.response_aad(verified.caller.app_id, verified.nonce)
            await self.app(scope, replay, _sealing_send(send, verified.sm4_key, aad))

    @staticmethod
    async def _answer(problem: Problem, scope: Scope, receive: Receive, send: Send) -> None:
        await problem_response(problem.status, problem.body(scope["path"]), problem.headers)(scope, receive, send)

    async def _verify(self, ctx: AppContext, scope: Scope, receive: Receive) -> _Verified:
        settings = ctx.settings
        headers = Headers(scope=scope)
        app_id = headers.get(protocol.APP_ID, "")
        stamp = headers.get(protocol.TIMESTAMP, "")
        nonce = headers.get(protocol.NONCE, "")
        encryption = headers.get(protocol.ENCRYPTION)
        if not protocol.APP_ID_PATTERN.fullmatch(app_id):
            raise Refusal("APP_UNKNOWN", f"请在 {protocol.APP_ID} 请求头中提供接入应用编号。")
        if not protocol.TIMESTAMP_PATTERN.fullmatch(stamp):
            raise Refusal("TIMESTAMP_SKEW", f"{protocol.TIMESTAMP} 须为 Unix 时间（秒）。")
        if not protocol.NONCE_PATTERN.fullmatch(nonce):
            raise Refusal("NONCE_INVALID", f"{protocol.NONCE} 须为 16–64 位字母、数字、下划线或连字符。")
        try:
            signature = base64.b64decode(headers.get(protocol.SIGNATURE, ""), validate=True)
        except (binascii.Error, ValueError):
            signature = b""
        if not signature:
            raise Refusal("SIGNATURE_INVALID", f"请在 {protocol.SIGNATURE} 请求头中提供 Base64 编码的 SM2 签名。")
        if encryption is not None and encryption != protocol.SM4_GCM:
            raise Refusal("BODY_DECRYPTION_FAILED", f"{protocol.ENCRYPTION} 仅支持 {protocol.SM4_GCM}。")

        postgres = self.breakers.get("postgresql", settings, POSTGRES_OUTAGES)
        async with postgres.guard():
            app = await store.load_app(ctx.pg, app_id)
        if app is None:
            raise Refusal("APP_UNKNOWN", "接入应用不存在或已停用。")
        window = settings.gateway_timestamp_window_s
        timestamp = int(stamp)
        if abs(time.time() - timestamp) > window:
            raise Refusal(
                "TIMESTAMP_SKEW", f"请求时间与服务器时间相差超过 {window} 秒，请校准时钟。", app_id=app.app_id
            )

        body = await _read_body(receive)
        canonical = protocol.canonical_request(scope["method"], _target(scope), stamp, nonce, body)
        try:
            _public_key(app.public_key_pem).verify(signature, canonical, protocol.SIGNER_ID)
        except InvalidSignature:
            raise Refusal(
                "SIGNATURE_INVALID", "签名校验失败，请检查签名原文、算法与密钥。", app_id=app.app_id
            ) from None

        # The nonce is needed only while a request with its timestamp could still be accepted.
        expires_at = datetime.fromtimestamp(timestamp + window, UTC)
        async with postgres.guard():
            admission = await store.admit(ctx.pg, app.app_id, nonce, expires_at)
        if not admission.fresh:
            raise Refusal("NONCE_REUSED", "该请求随机数已使用过，请为每个请求生成新的随机数。", app_id=app.app_id)
        if admission.hits > app.rate_limit_per_minute:
            GATEWAY_RATE_LIMITED.labels(app.app_id).inc()
            limit = app.rate_limit_per_minute
            raise limits.rate_limited(
                admission, lambda seconds: f"本应用每分钟最多调用 {limit} 次，请在 {seconds} 秒后重试。"
            )

        caller = IntegrationCaller(app_id=app.app_id, scopes=app.scopes)
        if encryption is None:
            return _Verified(caller=caller, nonce=nonce, body=body, sm4_key=None)
        key_hex = ctx.cipher.decrypt(store.SM4_KEY_COLUMN, app.sm4_key_enc)
        assert key_hex is not None  # the column is NOT NULL
        sm4_key = bytes.fromhex(key_hex)
        try:
            plaintext = protocol.unseal(sm4_key, body, protocol.request_aad(app.app_id, nonce)) if body else b""
        except ValueError:
            raise Refusal(
                "BODY_DECRYPTION_FAILED", "请求体无法用本应用的 SM4 密钥解密，或已被篡改。", app_id=app.app_id
            ) from None
        return _Verified(caller=caller, nonce=nonce, body=plaintext, sm4_key=sm4_key)


def _sealing_send(send: Send, sm4_key: bytes, aad: bytes) -> Send:
    """Hold the answer until its body is complete, then send it sealed with the app's key."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def sealing(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        sealed = protocol.seal(sm4_key, b"".join(chunks), aad)
        headers = MutableHeaders(scope=start)
        headers["content-length"] = str(len(sealed))
        headers[protocol.ENCRYPTION] = protocol.SM4_GCM
        await send(start)
        await send({"type": "http.response.body", "body": sealed, "more_body": False})

    return sealing

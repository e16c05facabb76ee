"""Per-request context: the request id (X-Request-ID in and out), one access-log line, the last-resort 500; and the
request body size limit.

Plain ASGI middlewares rather than Starlette's BaseHTTPMiddleware, so the handler runs in the same contextvars
context and the structlog bindings made here (and by the auth dependency) reach every log line of the request.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import internal_error_response, problem_body, problem_response

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only if it is short and plain, so it cannot smuggle anything into logs or headers.
_ACCEPTABLE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _logger() -> structlog.typing.FilteringBoundLogger:
    # Looked up per use so a later logging configuration (CLI, tests) applies.
    return structlog.get_logger("api")


def _request_id(scope: Scope) -> str:
    incoming = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
    return incoming if _ACCEPTABLE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _request_id(scope)
        # `request.state` is this dict: handlers read the id from it and the auth dependency leaves `actor_id` in it.
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        started = time.perf_counter()
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            _logger().exception("unhandled_error", method=scope["method"], path=scope["path"])
            if response_started:
                raise
            await internal_error_response(scope["path"], request_id)(scope, receive, send_with_request_id)
        finally:
            # Method, path (no query string), status, duration and actor only: never bodies, queries or PII.
            _logger().info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 1),
                actor=state.get("actor_id"),
            )
            structlog.contextvars.reset_contextvars(**tokens)
            structlog.contextvars.unbind_contextvars("actor")


class BodySizeLimitMiddleware:
    """Refuse request bodies over `max_bytes` with a 413 problem.

    (FastAPI's own `max_body_size` answers in plain text, replacing whatever the app sends.) A declared
    Content-Length is refused before the app runs; a streamed body fails when the handler reads past the limit.
    `larger` names the few paths (a pattern searched in the path) that take more, such as uploads, and their limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, larger: Sequence[tuple[re.Pattern[str], int]] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = next((size for pattern, size in self.larger if pattern.search(scope["path"])), self.max_bytes)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            body = problem_body(
                413,
                "PAYLOAD_TOO_LARGE",
                "请求内容过大",
                f"请求体不能超过 {limit} 字节。",
                instance=scope["path"],
            )
            await problem_response(413, body)(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                # FastAPI lets an HTTPException raised while reading the body through to the error handlers.
                raise HTTPException(413)
            return message

        await self.app(scope, receive_within_limit, send)

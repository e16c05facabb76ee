"""One chat socket: authentication, delivery of stored and live messages and receipts, and what the client sends.

Protocol (JSON text frames). The server sends
  {"type": "message", "message": <MessageOut>}   every message after the client's cursor, then each new one
  {"type": "read", <ReadOut>}                      a participant's read cursor, on connect and whenever it moves
  {"type": "synced", "last_id": N}                 once, when everything stored before connecting has been sent
  {"type": "ack", "client_msg_id", "id", "replayed"}  a sent message was stored (it also arrives as a "message")
  {"type": "error", "code", "title", "detail", "client_msg_id"}  a frame was refused; the socket stays open
  {"type": "pong"}
and the client sends
  {"type": "message", "body": "...", "client_msg_id": "..."}   text only; media go through the HTTP upload
  {"type": "read", "up_to": N}
  {"type": "ping"}
"""

from __future__ import annotations

import asyncio
import contextlib
from enum import IntEnum
from typing import Annotated, Any, Literal

import structlog
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from api.auth import Actor, load_actor
from api.context import AppContext
from api.errors import Problem
from api.schemas.consult import ReadIn, TextIn
from api.services.consult import ChatVisit, Draft, chat_for, mark_read, messages_after, reads_of, send_message
from api.services.consult_hub import ConsultHub, Subscriber
from core.passwords import token_digest
from models.consult import MessageKind

# Clients offer this subprotocol (and their token as a second one, see `offered_token`); the server selects it.
CHAT_SUBPROTOCOL = "qihuang.chat.v1"
BEARER_PREFIX = "bearer."
_BATCH = 100

_log = structlog.get_logger("api.consult")


class CloseCode(IntEnum):
    """Application close codes (4000–4999), mirroring the HTTP statuses the same refusal would get."""

    UNAUTHORIZED = 4401
    NOT_A_PARTICIPANT = 4403
    NOT_FOUND = 4404


class _SendFrame(TextIn):
    type: Literal["message"]


class _ReadFrame(ReadIn):
    type: Literal["read"]


class _PingFrame(BaseModel):
    type: Literal["ping"]


_CLIENT_FRAME: TypeAdapter[_SendFrame | _ReadFrame | _PingFrame] = TypeAdapter(
    Annotated[_SendFrame | _ReadFrame | _PingFrame, Field(discriminator="type")]
)


def offered_token(websocket: WebSocket) -> str | None:
    """The bearer token from the subprotocol `bearer.<token>`, else from an `Authorization: Bearer` header.

    Browsers cannot set headers on a WebSocket but can offer subprotocols; the token is never selected, so the server
    never sends it back. Apps and mini-programs may use the header. A token in the query string is not accepted: the
    server's own log and proxies on the way record the URL of every handshake.
    """
    for offered in websocket.scope.get("subprotocols", []):
        if offered.startswith(BEARER_PREFIX):
            return str(offered[len(BEARER_PREFIX) :])
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def serve(websocket: WebSocket, ctx: AppContext, hub: ConsultHub, visit_id: str, after: int) -> None:
    """Accept first, then refuse with a close code if need be: a browser sees the code of a close frame, but not the
    status of a refused handshake."""
    subprotocol = CHAT_SUBPROTOCOL if CHAT_SUBPROTOCOL in websocket.scope.get("subprotocols", []) else None
    await websocket.accept(subprotocol=subprotocol)
    token = offered_token(websocket)
    digest = token_digest(token) if token else ""
    actor = await load_actor(ctx.pg, digest, ctx.settings) if token else None
    # A token that may only enrol a second factor does not reach the consult room either.
    if actor is None or actor.enrolment_only or actor.applicant_only or actor.password_change_only:
        await websocket.close(CloseCode.UNAUTHORIZED, "未登录或登录已失效")
        return
    try:
        visit = await chat_for(ctx.pg, actor, visit_id)
    except Problem as refusal:
        code = CloseCode.NOT_A_PARTICIPANT if refusal.status == 403 else CloseCode.NOT_FOUND
        await websocket.close(code, refusal.title)
        return
    subscriber = hub.subscribe(visit_id, after)
    try:
        await _ChatSocket(websocket, ctx, visit, actor, digest).run(subscriber)
    finally:
        hub.unsubscribe(subscriber)


class _ChatSocket:
    def __init__(self, websocket: WebSocket, ctx: AppContext, visit: ChatVisit, actor: Actor, digest: str) -> None:
        self._ws = websocket
        self._ctx = ctx
        self._visit = visit
        self._actor = actor
        self._digest = digest
        # Delivery and answers to the client's frames run in two tasks; one frame at a time goes out.
        self._send_lock = asyncio.Lock()
        self._reads_sent: dict[str, int] = {}

    async def run(self, subscriber: Subscriber) -> None:
        tasks = {
            asyncio.create_task(self._deliver(subscriber), name="consult-deliver"),
            asyncio.create_task(self._receive(), name="consult-receive"),
        }
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        failure = next((task.exception() for task in done if task.exception() is not None), None)
        if failure is not None and not isinstance(failure, WebSocketDisconnect):
            _log.error("consult_socket_failed", visit_id=self._visit.visit_id, error=type(failure).__name__)
            with contextlib.suppress(Exception):
                await self._ws.close(1011)

    async def _send(self, frame: dict[str, Any]) -> None:
        async with self._send_lock:
            await self._ws.send_json(frame)

    async def _deliver(self, subscriber: Subscriber) -> None:
        synced = False
        while True:
            await subscriber.wake.wait()
            subscriber.wake.clear()
            while True:
                batch = await messages_after(
                    self._ctx.pg, self._ctx.cipher, self._visit.visit_id, subscriber.cursor, _BATCH
                )
                for message in batch:
                    await self._send({"type": "message", "message": message.model_dump(mode="json")})
                    subscriber.cursor = message.id
                if len(batch) < _BATCH:
                    break
            if subscriber.reads_changed:
                subscriber.reads_changed = False
                await self._send_reads()
            if not synced:
                synced = True
                await self._send({"type": "synced", "last_id": subscriber.cursor})

    async def _send_reads(self) -> None:
        for read in await reads_of(self._ctx.pg, self._visit):
            if self._reads_sent.get(read.user_id) != read.last_read_id:
                await self._send({"type": "read", **read.model_dump(mode="json")})
                self._reads_sent[read.user_id] = read.last_read_id

    async def _receive(self) -> None:
        while True:
            incoming = await self._ws.receive()
            if incoming["type"] == "websocket.disconnect":
                return
            # The token is checked again for every frame, as for every HTTP request: a logout ends the chat too.
            if await load_actor(self._ctx.pg, self._digest, self._ctx.settings) is None:
                await self._ws.close(CloseCode.UNAUTHORIZED, "未登录或登录已失效")
                return
            await self._answer(incoming.get("text"))

    async def _answer(self, text: str | None) -> None:
        if text is None:
            await self._error("BAD_FRAME", "无法识别的消息", "请以 JSON 文本帧发送。")
            return
        try:
            frame = _CLIENT_FRAME.validate_json(text)
        except ValidationError:
            await self._error("BAD_FRAME", "无法识别的消息", "消息格式不正确，请检查 type 与各字段。")
            return
        if isinstance(frame, _PingFrame):
            await self._send({"type": "pong"})
        elif isinstance(frame, _ReadFrame):
            await mark_read(self._ctx.sessions, self._actor, self._visit.visit_id, frame.up_to)
        else:
            draft = Draft(kind=MessageKind.TEXT, body=frame.body, client_msg_id=frame.client_msg_id)
            try:
                message_id, created = await send_message(
                    self._ctx.sessions, self._ctx.cipher, self._actor, self._visit, draft
                )
            except Problem as refusal:
                await self._error(refusal.code, refusal.title, refusal.detail, frame.client_msg_id)
                return
            ack = {"type": "ack", "client_msg_id": frame.client_msg_id, "id": message_id, "replayed": not created}
            await self._send(ack)

    async def _error(self, code: str, title: str, detail: str | None, client_msg_id: str | None = None) -> None:
        await self._send(
            {"type": "error", "code": code, "title": title, "detail": detail, "client_msg_id": client_msg_id}
        )

"""Consultation chat and calls of a visit (8.5.7), for its patient and its doctor only.

Real time: `WS /api/v1/visits/{visit_id}/chat?after=<id>` (protocol in api/services/consult_socket.py). Authenticate
by offering two subprotocols, `qihuang.chat.v1` and `bearer.<access token>` (the server selects the first); apps
and mini-programs may send `Authorization: Bearer` instead. Not `?access_token=`: handshake URLs end up in server
and proxy logs. Refusals close the socket with 4401 (no or expired token), 4403 (an administrator: the conversation
is the participants' alone) or 4404 (no such visit, or another person's). Everything after `after` is sent first,
so a client that was offline reconnects with the last id it saw.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request, Response, WebSocket
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from api.auth import ActorDep
from api.context import AppContext
from api.deps import ContextDep
from api.errors import Problem, problem_responses
from api.idempotency import REPLAYED_HEADER
from api.schemas.consult import CallEndOut, CallIn, CallOut, HistoryOut, MediaForm, MessageOut, ReadIn, ReadOut, TextIn
from api.services import consult_socket
from api.services.audit import audit_read
from api.services.consult import (
    Draft,
    Upload,
    chat_for,
    mark_read,
    media_of,
    messages_after,
    one_message,
    reads_of,
    send_message,
)
from api.services.consult_calls import end_call, start_call
from api.services.consult_hub import ConsultHub
from api.services.consult_media import (
    MAX_UPLOAD_BYTES,
    SIZE_LIMITS,
    allowed_types,
    check_media,
    normalise_type,
    seal,
    unseal,
)
from api.services.sealed_files import file_response
from core.crypto.sm import sm3_hex
from models.consult import CallMedia, MessageKind


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the app's own lifespan (which made `app.state.ctx`): one chat listener per process."""
    ctx: AppContext = app.state.ctx
    hub = ConsultHub(ctx.settings.libpq_database_url)
    await hub.start()
    app.state.consult_hub = hub
    try:
        yield
    finally:
        await hub.stop()


router = APIRouter(tags=["consult"], lifespan=_lifespan)

# Uploads are bigger than the API's general body limit (see api.middleware.BodySizeLimitMiddleware).
LARGE_BODIES = ((re.compile(r"/visits/[^/]+/messages\Z"), MAX_UPLOAD_BYTES),)

VisitId = Annotated[str, Path(max_length=80)]
MessageId = Annotated[int, Path(ge=1, le=2**63 - 1)]

_SEND_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": TextIn.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["kind", "file"],
                    "properties": {
                        "kind": {"type": "string", "enum": ["image", "voice"]},
                        "client_msg_id": {"type": "string", "maxLength": 64},
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": (
                                f"图片（{'、'.join(allowed_types(MessageKind.IMAGE))}，不超过 5 MB）或语音"
                                f"（{'、'.join(allowed_types(MessageKind.VOICE))}，不超过 2 MB）"
                            ),
                        },
                    },
                }
            },
        },
    }
}


@router.get(
    "/visits/{visit_id}/messages",
    response_model=HistoryOut,
    responses=problem_responses(401, 403, 404, 422),
    summary="问诊消息记录",
)
async def history(
    visit_id: VisitId,
    request: Request,
    actor: ActorDep,
    ctx: ContextDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="只返回编号大于此值的消息")] = 0,
    limit: Annotated[int, Query(ge=1, le=200, description="每页条数")] = 50,
) -> HistoryOut:
    """Oldest first, from after `after`; page on with `after=next_after` while `has_more`. Open to the participants
    for ever, also after the conversation closed for writing.

    Real time: `WS /api/v1/visits/{visit_id}/chat?after=<id>` sends everything after `after`, then each new message
    and read receipt. Authenticate by offering the subprotocols `qihuang.chat.v1` and `bearer.<token>` (browsers
    cannot set headers on a WebSocket) or, from native apps, with `Authorization: Bearer`; never in the URL, which
    gets logged. Refusals close with 4401 (no or expired token), 4403 (not a participant) or 4404 (no such visit).
    """
    visit = await chat_for(ctx.pg, actor, visit_id)
    async with ctx.sessions() as session:
        await audit_read(session, actor, "consult_messages", visit_id, visit.patient_id, request)
    items = await messages_after(ctx.pg, ctx.cipher, visit_id, after, limit + 1)
    page = items[:limit]
    return HistoryOut(
        items=page,
        has_more=len(items) > limit,
        next_after=page[-1].id if page else None,
        reads=await reads_of(ctx.pg, visit),
    )


def _invalid(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError(
        [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
    )


def _text_draft(raw: bytes) -> Draft:
    try:
        text = TextIn.model_validate_json(raw)
    except ValidationError as exc:
        raise _invalid(exc) from None
    return Draft(kind=MessageKind.TEXT, body=text.body, client_msg_id=text.client_msg_id)


async def _media_draft(request: Request, key_hex: str) -> Draft:
    async with request.form(max_files=1, max_fields=4) as form:
        fields = {name: value for name, value in form.multi_items() if isinstance(value, str)}
        try:
            meta = MediaForm.model_validate(fields)
        except ValidationError as exc:
            raise _invalid(exc) from None
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            missing = {"type": "missing", "loc": ("body", "file"), "msg": "Field required", "input": None}
            raise RequestValidationError([missing])
        kind = MessageKind(meta.kind)
        # One byte past the limit is enough to know it is too large.
        data = await upload.read(SIZE_LIMITS[kind] + 1)
        content_type = normalise_type(upload.content_type)
    check_media(kind, content_type, data)
    media_id = f"med-{uuid.uuid4().hex}"
    sealed = Upload(
        media_id=media_id,
        kind=kind,
        content_type=content_type,
        size_bytes=len(data),
        sm3=sm3_hex(data),
        data_enc=seal(key_hex, media_id, data),
    )
    return Draft(kind=kind, upload=sealed, client_msg_id=meta.client_msg_id)


@router.post(
    "/visits/{visit_id}/messages",
    status_code=201,
    response_model=MessageOut,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422),
    openapi_extra=_SEND_BODY,
    summary="发送问诊消息",
)
async def send(visit_id: VisitId, request: Request, response: Response, actor: ActorDep, ctx: ContextDep) -> MessageOut:
    """Text as JSON, or an image or voice clip as multipart/form-data (fields `kind`, `file`, `client_msg_id`).

    Every participant's open chat socket receives the message at once; others get it when they next connect or read
    the history. With a `client_msg_id` a resend answers 200 with the stored message and `Idempotent-Replayed: true`.

    Writable from payment until 24 hours after the visit ended: 409 `CONSULT_NOT_OPEN` before payment,
    `CONSULT_CLOSED` after. Media: 413 `MEDIA_TOO_LARGE` (image over 5 MB, voice over 2 MB), 415
    `MEDIA_TYPE_NOT_ALLOWED`, 422 `MEDIA_EMPTY` or `MEDIA_CONTENT_MISMATCH` (the bytes are not of the declared type).
    """
    visit = await chat_for(ctx.pg, actor, visit_id)
    content_type = normalise_type(request.headers.get("content-type"))
    if content_type == "application/json":
        draft = _text_draft(await request.body())
    elif content_type == "multipart/form-data":
        draft = await _media_draft(request, ctx.settings.pii_key)
    else:
        raise Problem(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "不支持的请求内容类型",
            "文字消息请用 application/json，图片与语音请用 multipart/form-data。",
        )
    message_id, created = await send_message(ctx.sessions, ctx.cipher, actor, visit, draft)
    if not created:
        response.status_code = 200
        response.headers[REPLAYED_HEADER] = "true"
    message = await one_message(ctx.pg, ctx.cipher, visit_id, message_id)
    assert message is not None  # committed above and never deleted
    return message


@router.get(
    "/visits/{visit_id}/messages/{message_id}/media",
    response_class=Response,
    responses={
        200: {"description": "文件内容（已解密）", "content": {"image/*": {}, "audio/*": {}}},
        **problem_responses(401, 403, 404, 422),
    },
    summary="下载问诊图片或语音",
)
async def download(
    visit_id: VisitId, message_id: MessageId, request: Request, actor: ActorDep, ctx: ContextDep
) -> Response:
    """The file as uploaded; `X-Content-SM3` carries the SM3 digest recorded at upload."""
    visit = await chat_for(ctx.pg, actor, visit_id)
    async with ctx.sessions() as session:
        await audit_read(session, actor, "consult_media", f"{visit_id}:{message_id}", visit.patient_id, request)
    media = await media_of(ctx.pg, visit_id, message_id)
    if media is None:
        raise Problem(404, "NOT_FOUND", "未找到", "该消息没有图片或语音")
    return file_response(
        unseal(ctx.settings.pii_key, media["id"], media["data_enc"]), media["content_type"], media["sm3"]
    )


@router.post(
    "/visits/{visit_id}/messages/read",
    response_model=list[ReadOut],
    responses=problem_responses(401, 403, 404, 422),
    summary="标记问诊消息已读",
)
async def read(visit_id: VisitId, body: ReadIn, actor: ActorDep, ctx: ContextDep) -> list[ReadOut]:
    """Read receipt up to `up_to` (inclusive); the cursor never moves back. Answers with every participant's cursor,
    and the others' open sockets get the new one."""
    visit = await chat_for(ctx.pg, actor, visit_id)
    await mark_read(ctx.sessions, actor, visit_id, body.up_to)
    return await reads_of(ctx.pg, visit)


@router.post(
    "/visits/{visit_id}/calls",
    status_code=201,
    response_model=CallOut,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
    summary="发起或加入音视频通话",
)
async def call(
    visit_id: VisitId, response: Response, actor: ActorDep, ctx: ContextDep, body: CallIn | None = None
) -> CallOut:
    """A room for the call and the caller's token to join it (valid 2 hours). While a call is going on, a start joins
    it (200). The start is recorded in the chat as a `call` message.

    409 `CALL_NOT_OPEN` unless the doctor has accepted and the visit has not ended; 409 `CALL_NOT_INCLUDED` when the
    registration does not cover it (text consultations have no calls, phone consultations audio only);
    503 `RTC_UNAVAILABLE` when the RTC service does not answer.
    """
    visit = await chat_for(ctx.pg, actor, visit_id)
    media = body.media if body is not None else CallMedia.VIDEO
    answer, started = await start_call(ctx.sessions, ctx.cipher, ctx.adapters.rtc, actor, visit, media)
    if not started:
        response.status_code = 200
    return answer


@router.post(
    "/visits/{visit_id}/calls/{call_id}/end",
    response_model=CallEndOut,
    responses=problem_responses(401, 403, 404),
    summary="结束音视频通话",
)
async def end(
    visit_id: VisitId, call_id: Annotated[str, Path(max_length=40)], actor: ActorDep, ctx: ContextDep
) -> CallEndOut:
    """Records the end and the duration, also as a `call` message in the chat. Ending an ended call changes nothing."""
    visit = await chat_for(ctx.pg, actor, visit_id)
    return await end_call(ctx.sessions, ctx.cipher, actor, visit, call_id)


@router.websocket("/visits/{visit_id}/chat")
async def chat(websocket: WebSocket, visit_id: VisitId, after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0) -> None:
    hub: ConsultHub = websocket.app.state.consult_hub
    await consult_socket.serve(websocket, websocket.app.state.ctx, hub, visit_id, after)

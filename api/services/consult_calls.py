"""Audio and video calls of a consultation (8.5.7): a room per call from the RTC adapter, a token per participant, and
the start and end recorded in the chat as `call` messages.

Calls run while the doctor is seeing the patient (`in_consult`) and only as far as the registration paid for: none
for a text consultation (图文问诊), audio for a phone one, audio or video for a video one. A start while a call is
going on joins it. Ending is open to either participant at any time and ending twice changes nothing.

The API asks the adapter itself instead of going through a workflow: admission is a signature computed for the caller
who waits for it, and the call has no deadline or step that needs a durable flow.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Integer, Row, cast, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.errors import AdapterError
from activities.adapters.rtc import Rtc
from api.auth import Actor
from api.errors import Problem
from api.schemas.consult import CallEndOut, CallOut
from api.services.consult import CALLS, ChatVisit, Draft, insert_message, lock_chat, participants
from core.crypto.sm import FieldCipher
from models.consult import CallMedia, MessageKind, RtcRoom
from models.visit import VisitStage

TOKEN_TTL_S = 2 * 3600
_MEDIA_BY_SERVICE = {
    "text": frozenset[CallMedia](),
    "phone": frozenset({CallMedia.AUDIO}),
    "video": frozenset({CallMedia.AUDIO, CallMedia.VIDEO}),
}
_MEDIA_NAMES = {CallMedia.AUDIO: "语音通话", CallMedia.VIDEO: "视频通话"}
_SERVICE_NAMES = {"text": "图文问诊", "phone": "电话问诊", "video": "视频问诊"}


def _check_can_call(visit: ChatVisit, media: CallMedia) -> None:
    if visit.stage is not VisitStage.IN_CONSULT:
        raise Problem(409, "CALL_NOT_OPEN", "当前不能发起通话", "医生接诊后、问诊结束前可以发起通话。")
    if media not in _MEDIA_BY_SERVICE.get(visit.service_type, frozenset()):
        service = _SERVICE_NAMES.get(visit.service_type, visit.service_type)
        raise Problem(409, "CALL_NOT_INCLUDED", "本次问诊不含此类通话", f"本次为{service}，不含{_MEDIA_NAMES[media]}。")


async def _ongoing(session: AsyncSession, visit_id: str) -> Row[Any] | None:
    query = select(CALLS).where(CALLS.c.visit_id == visit_id, CALLS.c.ended_at.is_(None))
    return (await session.execute(query)).first()


async def start_call(
    sessions: async_sessionmaker[AsyncSession],
    cipher: FieldCipher,
    rtc: Rtc,
    actor: Actor,
    visit: ChatVisit,
    media: CallMedia,
) -> tuple[CallOut, bool]:
    """Start a call, or join the one going on: (the call with the caller's token, whether it was started now)."""
    _check_can_call(visit, media)
    role = participants(visit)[actor.user_id]
    try:
        # Under the chat lock, so two participants starting at once end up in one call. The room is asked for inside
        # it: providers make rooms on demand in milliseconds, the sandbox at once.
        async with sessions() as session, session.begin():
            await lock_chat(session, visit.visit_id)
            call = await _ongoing(session, visit.visit_id)
            started = call is None
            if call is None:
                call_id = f"call-{secrets.token_hex(8)}"
                room = await rtc.create_room(visit_id=visit.visit_id, call_id=call_id)
                call = (
                    await session.execute(
                        insert(CALLS)
                        .values(
                            id=call_id,
                            visit_id=visit.visit_id,
                            media=media.value,
                            provider=room.provider,
                            room_id=room.room_id,
                            endpoint=room.endpoint,
                            started_by=actor.user_id,
                        )
                        .returning(CALLS)
                    )
                ).one()
                draft = Draft(kind=MessageKind.CALL, body=f"{_MEDIA_NAMES[media]}已开始", call_id=call_id)
                await insert_message(session, cipher, visit.visit_id, actor, role, draft)
        room = RtcRoom(provider=call.provider, room_id=call.room_id, endpoint=call.endpoint)
        token = await rtc.issue_token(room=room, user_id=actor.user_id, role=role.value, ttl_s=TOKEN_TTL_S)
    except AdapterError as exc:
        raise Problem(503, "RTC_UNAVAILABLE", "音视频服务暂不可用", "请稍后重试，或先以文字沟通。") from exc
    answer = CallOut(
        call_id=call.id,
        visit_id=visit.visit_id,
        media=CallMedia(call.media),
        room=room,
        token=token.token,
        token_expires_at=token.expires_at,
        started_by=call.started_by,
        started_at=call.started_at,
    )
    return answer, started


def _duration_text(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} 分 {rest} 秒" if minutes else f"{rest} 秒"


async def end_call(
    sessions: async_sessionmaker[AsyncSession], cipher: FieldCipher, actor: Actor, visit: ChatVisit, call_id: str
) -> CallEndOut:
    """End a call and record how long it lasted; a call already ended is answered as it was recorded."""
    async with sessions() as session, session.begin():
        await lock_chat(session, visit.visit_id)
        call = (
            await session.execute(select(CALLS).where(CALLS.c.id == call_id, CALLS.c.visit_id == visit.visit_id))
        ).first()
        if call is None:
            raise Problem(404, "NOT_FOUND", "未找到", "通话不存在")
        if call.ended_at is None:
            # Both ends on the database's clock, the one that stamped the start.
            elapsed = func.floor(func.extract("epoch", func.now() - CALLS.c.started_at))
            ended = update(CALLS).where(CALLS.c.id == call_id)
            values = {"ended_at": func.now(), "ended_by": actor.user_id, "duration_s": cast(elapsed, Integer)}
            call = (await session.execute(ended.values(**values).returning(CALLS))).one()
            text = f"{_MEDIA_NAMES[CallMedia(call.media)]}已结束，时长 {_duration_text(call.duration_s)}"
            draft = Draft(kind=MessageKind.CALL, body=text, call_id=call_id)
            await insert_message(session, cipher, visit.visit_id, actor, participants(visit)[actor.user_id], draft)
    return CallEndOut(
        call_id=call.id,
        visit_id=call.visit_id,
        media=CallMedia(call.media),
        started_at=call.started_at,
        ended_at=call.ended_at,
        ended_by=call.ended_by,
        duration_s=call.duration_s,
    )

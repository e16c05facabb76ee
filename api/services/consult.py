"""Consultation chat of a visit (8.5.7): who takes part, when it is open, storing and reading messages and receipts.

Who: the visit's patient, its doctor and the doctors invited into its consult (会诊) (`participants`). Anyone else gets 404, as for every record they may not
see; an administrator, who may see the visit, gets 403: the conversation itself is the participants' alone.

When: readable by the participants for ever. Writable from payment (`waiting_doctor`) while the consultation goes on,
and for `CHAT_GRACE` after the visit finished or was aborted, so a question about the advice or the prescription can
still be asked and answered; the end is when the visit last changed (`visits.updated_at`). An unpaid, cancelled or
no-show visit has no conversation to write to. Read receipts may always be sent.

Order: the messages of one visit are inserted one at a time (a transaction-level advisory lock per visit), so their
ids grow in commit order and "everything after id N" never skips a message that commits late. Every insert notifies
the `consult` channel in its own transaction (see api/services/consult_hub.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy import Table, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import Actor
from api.errors import Problem
from api.schemas.consult import MediaOut, MessageOut, ReadOut
from api.services.consult_hub import MESSAGE_CHANNEL, READ_CHANNEL, message_notice
from core.crypto.sm import FieldCipher
from core.ledger.service import EvidenceLedger
from models.common import Role
from models.consult import MessageKind
from models.ledger import Evidence
from models.tables import ConsultCall, ConsultMedia, ConsultMessage, ConsultRead, Visit
from models.visit import VisitStage

CHAT_GRACE = timedelta(hours=24)
# What the evidence ledger calls a chat image or voice clip (models.ledger.Evidence.kind).
MEDIA_EVIDENCE = "consult.media"
_OPEN_STAGES = frozenset({VisitStage.WAITING_DOCTOR, VisitStage.IN_CONSULT})
_ENDED_STAGES = frozenset({VisitStage.FINISHED, VisitStage.ABORTED})
# Namespace of the per-visit advisory locks (the two-key form, apart from the single-key locks elsewhere).
_LOCK_NAMESPACE = 724002


def _table(model: type) -> Table:
    return model.__table__  # type: ignore[attr-defined]


MESSAGES = _table(ConsultMessage)
CALLS = _table(ConsultCall)
MEDIA = _table(ConsultMedia)
READS = _table(ConsultRead)
VISITS = _table(Visit)


@dataclass(frozen=True)
class ChatVisit:
    visit_id: str
    stage: VisitStage
    # When the visit last changed: for a finished or aborted visit, when it ended.
    updated_at: datetime
    patient_id: str
    doctor_id: str
    patient_user_id: str
    doctor_user_id: str
    # text, phone or video: what the registration paid for (decides which calls may be made).
    service_type: str
    # Doctors invited into the consult (会诊, 8.2.3.5).
    consultant_user_ids: tuple[str, ...] = ()


def participants(visit: ChatVisit) -> dict[str, Role]:
    """Everyone who may read and write the visit's chat and join its calls, by user id, with the role they have in it.

    The one place that decides it: invited consultants (会诊) join here.
    """
    consultants = dict.fromkeys(visit.consultant_user_ids, Role.DOCTOR)
    return {**consultants, visit.patient_user_id: Role.PATIENT, visit.doctor_user_id: Role.DOCTOR}


_CHAT_VISIT = """
    SELECT v.id, v.stage, v.updated_at, v.patient_id, v.doctor_id, p.user_id AS patient_user_id,
           d.user_id AS doctor_user_id, coalesce(s.service_type, 'text') AS service_type,
           ARRAY(SELECT cd.user_id FROM visit_consultants vc JOIN doctors cd ON cd.id = vc.doctor_id
                  WHERE vc.visit_id = v.id ORDER BY vc.invited_at) AS consultant_user_ids
      FROM visits v
      JOIN patients p ON p.id = v.patient_id
      JOIN doctors d ON d.id = v.doctor_id
      LEFT JOIN slots s ON s.id = v.slot_id
     WHERE v.id = $1
"""


async def load_chat_visit(pg: asyncpg.Pool, visit_id: str) -> ChatVisit | None:
    row = await pg.fetchrow(_CHAT_VISIT, visit_id)
    if row is None:
        return None
    return ChatVisit(
        visit_id=row["id"],
        stage=VisitStage(row["stage"]),
        updated_at=row["updated_at"],
        patient_id=row["patient_id"],
        doctor_id=row["doctor_id"],
        patient_user_id=row["patient_user_id"],
        doctor_user_id=row["doctor_user_id"],
        service_type=row["service_type"],
        consultant_user_ids=tuple(row["consultant_user_ids"]),
    )


def _not_found() -> Problem:
    return Problem(404, "NOT_FOUND", "未找到", "挂号记录不存在")


async def chat_for(pg: asyncpg.Pool, actor: Actor, visit_id: str) -> ChatVisit:
    """The visit if `actor` takes part in its chat: 404 for a visit they may not see, 403 for one they only oversee."""
    visit = await load_chat_visit(pg, visit_id)
    if visit is None:
        raise _not_found()
    if actor.user_id not in participants(visit):
        if actor.role is Role.ADMIN:
            raise Problem(403, "NOT_A_PARTICIPANT", "无权参与此问诊会话", "问诊会话仅限本次就诊的患者和医生。")
        raise _not_found()
    return visit


def check_writable(stage: VisitStage, updated_at: datetime, now: datetime) -> None:
    if stage in _OPEN_STAGES or (stage in _ENDED_STAGES and now < updated_at + CHAT_GRACE):
        return
    if stage is VisitStage.AWAITING_PAYMENT:
        raise Problem(409, "CONSULT_NOT_OPEN", "问诊尚未开始", "支付挂号费后即可与医生沟通。")
    raise Problem(
        409,
        "CONSULT_CLOSED",
        "问诊会话已关闭",
        "问诊结束 24 小时后（或挂号取消、爽约后）不能再发送消息，仍可查看记录。",
        stage=stage.value,
    )


async def lock_chat(session: AsyncSession, visit_id: str) -> tuple[VisitStage, datetime]:
    """Take the visit's chat lock for the rest of the transaction; the visit's stage and last change, as of now."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:visit_id))"),
        {"namespace": _LOCK_NAMESPACE, "visit_id": visit_id},
    )
    row = (await session.execute(select(VISITS.c.stage, VISITS.c.updated_at).where(VISITS.c.id == visit_id))).one()
    return VisitStage(row.stage), row.updated_at


async def notify_message(session: AsyncSession, visit_id: str, message_id: int) -> None:
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": MESSAGE_CHANNEL, "payload": message_notice(visit_id, message_id)},
    )


def body_column(visit_id: str) -> str:
    """The associated data message bodies are encrypted under: the column and the visit, so a body copied into another
    visit's chat does not decrypt."""
    return f"consult_messages.body_enc:{visit_id}"


@dataclass(frozen=True)
class Upload:
    """A checked media file, sealed and ready to store."""

    media_id: str
    kind: MessageKind
    content_type: str
    size_bytes: int
    sm3: str
    data_enc: bytes
    # Set by `send_message` once `sm3` is on the evidence ledger.
    ledger_seq: int | None = None


@dataclass(frozen=True)
class Draft:
    kind: MessageKind
    body: str | None = None
    upload: Upload | None = None
    call_id: str | None = None
    client_msg_id: str | None = None


async def insert_message(
    session: AsyncSession, cipher: FieldCipher, visit_id: str, sender: Actor, role: Role, draft: Draft
) -> int:
    """Insert one message and notify it; the caller holds the chat lock (`lock_chat`) and commits."""
    if draft.upload is not None:
        upload = draft.upload
        await session.execute(
            insert(MEDIA).values(
                id=upload.media_id,
                visit_id=visit_id,
                uploaded_by=sender.user_id,
                kind=upload.kind.value,
                content_type=upload.content_type,
                size_bytes=upload.size_bytes,
                sm3=upload.sm3,
                data_enc=upload.data_enc,
                ledger_seq=upload.ledger_seq,
            )
        )
    message_id: int = await session.scalar(
        insert(MESSAGES)
        .values(
            visit_id=visit_id,
            sender_user_id=sender.user_id,
            sender_role=role.value,
            kind=draft.kind.value,
            body_enc=cipher.encrypt(body_column(visit_id), draft.body),
            media_id=draft.upload.media_id if draft.upload else None,
            call_id=draft.call_id,
            client_msg_id=draft.client_msg_id,
        )
        .returning(MESSAGES.c.id)
    )
    await notify_message(session, visit_id, message_id)
    return message_id


async def send_message(
    sessions: async_sessionmaker[AsyncSession], cipher: FieldCipher, actor: Actor, visit: ChatVisit, draft: Draft
) -> tuple[int, bool]:
    """Store a participant's message: (its id, whether it is new). A repeat of a `client_msg_id` gets the first.

    An image or voice clip's SM3 digest goes on the evidence ledger first, as revisit uploads' do, and the row keeps
    where it went, as staff documents' rows do. First, because the ledger appends on its own connection, which must
    not be waited for inside this transaction: a send refused after the append leaves an entry whose media was never
    stored, never a stored media without an entry. Unlocked checks before the append spare the usual refusals (a
    resend, a closed chat) that entry; the locked ones below decide."""
    if draft.upload is not None:
        async with sessions() as session:
            existing = await _resent(session, visit, actor, draft)
        if existing is not None:
            return existing, False
        check_writable(visit.stage, visit.updated_at, datetime.now(UTC))
        draft = replace(draft, upload=await put_media_on_record(sessions, draft.upload))
    async with sessions() as session, session.begin():
        stage, updated_at = await lock_chat(session, visit.visit_id)
        existing = await _resent(session, visit, actor, draft)
        if existing is not None:
            return existing, False
        check_writable(stage, updated_at, datetime.now(UTC))
        role = participants(visit)[actor.user_id]
        return await insert_message(session, cipher, visit.visit_id, actor, role, draft), True


async def _resent(session: AsyncSession, visit: ChatVisit, actor: Actor, draft: Draft) -> int | None:
    """The message this draft's `client_msg_id` already stored, if any."""
    if draft.client_msg_id is None:
        return None
    found: int | None = await session.scalar(
        select(MESSAGES.c.id).where(
            MESSAGES.c.visit_id == visit.visit_id,
            MESSAGES.c.sender_user_id == actor.user_id,
            MESSAGES.c.client_msg_id == draft.client_msg_id,
        )
    )
    return found


async def put_media_on_record(sessions: async_sessionmaker[AsyncSession], upload: Upload) -> Upload:
    """The upload with `ledger_seq` set: its SM3 digest appended to the evidence ledger (once per media id)."""
    receipt = await EvidenceLedger(sessions).append(
        Evidence(kind=MEDIA_EVIDENCE, subject=f"consult_media:{upload.media_id}", digest=upload.sm3)
    )
    return replace(upload, ledger_seq=receipt.seq)


_SELECT_MESSAGES = """
    SELECT m.id, m.visit_id, m.kind, m.sender_user_id, m.sender_role, m.body_enc, m.call_id, m.client_msg_id,
           m.created_at, md.content_type, md.size_bytes, md.sm3
      FROM consult_messages m
      LEFT JOIN consult_media md ON md.id = m.media_id
"""
_MESSAGES_AFTER = _SELECT_MESSAGES + " WHERE m.visit_id = $1 AND m.id > $2 ORDER BY m.id LIMIT $3"
_ONE_MESSAGE = _SELECT_MESSAGES + " WHERE m.visit_id = $1 AND m.id = $2"


def media_url(visit_id: str, message_id: int) -> str:
    return f"/api/v1/visits/{visit_id}/messages/{message_id}/media"


def _message(row: asyncpg.Record, cipher: FieldCipher) -> MessageOut:
    media = None
    if row["content_type"] is not None:
        media = MediaOut(
            content_type=row["content_type"],
            size_bytes=row["size_bytes"],
            sm3=row["sm3"],
            url=media_url(row["visit_id"], row["id"]),
        )
    return MessageOut(
        id=row["id"],
        visit_id=row["visit_id"],
        kind=MessageKind(row["kind"]),
        sender_user_id=row["sender_user_id"],
        sender_role=Role(row["sender_role"]) if row["sender_role"] else None,
        body=cipher.decrypt(body_column(row["visit_id"]), row["body_enc"]),
        media=media,
        call_id=row["call_id"],
        client_msg_id=row["client_msg_id"],
        created_at=row["created_at"],
    )


async def messages_after(
    pg: asyncpg.Pool, cipher: FieldCipher, visit_id: str, after: int, limit: int
) -> list[MessageOut]:
    """Up to `limit` messages with ids above `after`, oldest first."""
    return [_message(row, cipher) for row in await pg.fetch(_MESSAGES_AFTER, visit_id, after, limit)]


async def one_message(pg: asyncpg.Pool, cipher: FieldCipher, visit_id: str, message_id: int) -> MessageOut | None:
    row = await pg.fetchrow(_ONE_MESSAGE, visit_id, message_id)
    return None if row is None else _message(row, cipher)


_MEDIA_OF_MESSAGE = """
    SELECT md.id, md.content_type, md.sm3, md.data_enc
      FROM consult_messages m JOIN consult_media md ON md.id = m.media_id
     WHERE m.visit_id = $1 AND m.id = $2
"""


async def media_of(pg: asyncpg.Pool, visit_id: str, message_id: int) -> asyncpg.Record | None:
    return await pg.fetchrow(_MEDIA_OF_MESSAGE, visit_id, message_id)


_READS = """
    SELECT r.user_id, u.role, r.last_read_id, r.updated_at
      FROM consult_reads r JOIN users u ON u.id = r.user_id
     WHERE r.visit_id = $1
     ORDER BY r.user_id
"""


async def reads_of(pg: asyncpg.Pool, visit: ChatVisit) -> list[ReadOut]:
    roles = participants(visit)
    return [
        ReadOut(
            user_id=row["user_id"],
            role=roles.get(row["user_id"], Role(row["role"])),
            last_read_id=row["last_read_id"],
            updated_at=row["updated_at"],
        )
        for row in await pg.fetch(_READS, visit.visit_id)
    ]


async def mark_read(sessions: async_sessionmaker[AsyncSession], actor: Actor, visit_id: str, up_to: int) -> None:
    """Move the actor's read cursor forward to `up_to` (at most the visit's last message); never backwards."""
    async with sessions() as session, session.begin():
        last = await session.scalar(select(func.max(MESSAGES.c.id)).where(MESSAGES.c.visit_id == visit_id))
        up_to = min(up_to, last or 0)
        if up_to <= 0:
            return
        now = datetime.now(UTC)
        moved = await session.scalar(
            insert(READS)
            .values(visit_id=visit_id, user_id=actor.user_id, last_read_id=up_to, updated_at=now)
            .on_conflict_do_update(
                index_elements=[READS.c.visit_id, READS.c.user_id],
                set_={"last_read_id": up_to, "updated_at": now},
                where=READS.c.last_read_id < up_to,
            )
            .returning(READS.c.last_read_id)
        )
        if moved is not None:
            await session.execute(
                text("SELECT pg_notify(:channel, :payload)"), {"channel": READ_CHANNEL, "payload": visit_id}
            )

"""Consultation chat (问诊会话) and calls of a visit (8.5.7). Kept for the retention period of medical records:
nothing here is updated or deleted by ordinary operations, except a read cursor moving forward and a call ending.

Message bodies and media are health data: `body_enc` holds SM4-GCM ciphertext bound to the column and the visit, and
`data_enc` the uploaded bytes bound to their media id (see api/services/consult.py and consult_media.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


class ConsultMedia(SQLModel, table=True):
    """An uploaded image or voice clip. `sm3` and `size_bytes` describe the plaintext."""

    __tablename__ = "consult_media"
    __table_args__ = (
        CheckConstraint("kind IN ('image', 'voice')", name="consult_media_kind"),
        CheckConstraint("size_bytes > 0", name="consult_media_size"),
    )

    id: str = Field(primary_key=True, max_length=40)
    visit_id: str = Field(foreign_key="visits.id", index=True, max_length=80)
    uploaded_by: str = Field(foreign_key="users.id", max_length=40)
    kind: str = Field(max_length=8)
    content_type: str = Field(max_length=64)
    size_bytes: int
    sm3: str = Field(max_length=64)
    data_enc: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # Where `sm3` went on the evidence ledger.
    ledger_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = Timestamp(default_now=True)


class ConsultCall(SQLModel, table=True):
    """One audio or video call: the RTC room it ran in, who started and ended it, and how long it lasted."""

    __tablename__ = "consult_calls"
    __table_args__ = (
        CheckConstraint("media IN ('audio', 'video')", name="consult_call_media"),
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="consult_call_window"),
        # At most one call of a visit is going on; a second start joins it.
        Index("consult_call_ongoing", "visit_id", unique=True, postgresql_where=text("ended_at IS NULL")),
    )

    id: str = Field(primary_key=True, max_length=40)
    visit_id: str = Field(foreign_key="visits.id", index=True, max_length=80)
    media: str = Field(max_length=8)
    provider: str = Field(max_length=32)
    room_id: str = Field(max_length=128)
    endpoint: str = Field(max_length=200)
    started_by: str = Field(foreign_key="users.id", max_length=40)
    started_at: datetime = Timestamp(default_now=True)
    ended_by: str | None = Field(default=None, foreign_key="users.id", max_length=40)
    ended_at: datetime | None = Timestamp(nullable=True)
    duration_s: int | None = None


class ConsultMessage(SQLModel, table=True):
    """One message of a visit's chat. The id orders the messages of a visit (see `lock_chat`) and is the cursor
    clients page and reconnect with."""

    __tablename__ = "consult_messages"
    __table_args__ = (
        # A resend of the same client message is answered with the stored one (NULL ids never conflict).
        UniqueConstraint("visit_id", "sender_user_id", "client_msg_id", name="consult_message_once"),
        Index("ix_consult_messages_visit_id_id", "visit_id", "id"),
        CheckConstraint("kind IN ('text', 'image', 'voice', 'system', 'call')", name="consult_message_kind"),
        CheckConstraint("kind = 'system' OR sender_user_id IS NOT NULL", name="consult_message_sender"),
        CheckConstraint("kind NOT IN ('text', 'system') OR body_enc IS NOT NULL", name="consult_message_body"),
        CheckConstraint("(kind IN ('image', 'voice')) = (media_id IS NOT NULL)", name="consult_message_media"),
        CheckConstraint("(kind = 'call') = (call_id IS NOT NULL)", name="consult_message_call"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    visit_id: str = Field(foreign_key="visits.id", max_length=80)
    sender_user_id: str | None = Field(default=None, foreign_key="users.id", max_length=40)
    sender_role: str | None = Field(default=None, max_length=16)
    kind: str = Field(max_length=8)
    body_enc: str | None = None
    media_id: str | None = Field(default=None, foreign_key="consult_media.id", max_length=40)
    call_id: str | None = Field(default=None, foreign_key="consult_calls.id", max_length=40)
    client_msg_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Timestamp(default_now=True)


class ConsultRead(SQLModel, table=True):
    """How far each participant has read a visit's chat (read receipts); only ever moves forward."""

    __tablename__ = "consult_reads"

    visit_id: str = Field(primary_key=True, foreign_key="visits.id", max_length=80)
    user_id: str = Field(primary_key=True, foreign_key="users.id", max_length=40)
    last_read_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = Timestamp(default_now=True)

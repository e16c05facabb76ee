"""Cross-cutting records: idempotent responses, the in-app notice inbox and the e-mails sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from models.tables._types import Json, Timestamp


class IdempotencyRecord(SQLModel, table=True):
    """The first answer to a POST with an `Idempotency-Key`, replayed for every repeat of that key."""

    __tablename__ = "idempotency_records"

    user_id: str = Field(primary_key=True, max_length=40)
    key: str = Field(primary_key=True, max_length=128)
    request_hash: str = Field(max_length=64)
    status_code: int
    body: dict[str, Any] = Json()
    created_at: datetime = Timestamp(default_now=True)


class Notification(SQLModel, table=True):
    __tablename__ = "notifications"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=200)
    user_id: str = Field(foreign_key="users.id", index=True)
    template: str = Field(max_length=64)
    title: str
    body: str
    params: dict[str, Any] = Json()
    created_at: datetime = Timestamp(default_now=True)
    read_at: datetime | None = Timestamp(nullable=True)


class SentEmail(SQLModel, table=True):
    """An e-mail a real mail server accepted, under the idempotency key it was sent with. SMTP has no key of its own,
    so this row is what makes a retried send a no-op; it holds no address or text, only what identifies the mail."""

    __tablename__ = "sent_emails"

    idempotency_key: str = Field(primary_key=True, max_length=200)
    message_id: str = Field(max_length=200)
    # The server's answer to the message (e.g. "250 2.0.0 Ok: queued as 4Bx1"), to trace it in the server's logs.
    reply: str = Field(default="", max_length=500)
    sent_at: datetime = Timestamp(default_now=True)

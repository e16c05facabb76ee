"""Cross-cutting records: idempotent responses and the in-app notice inbox."""

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

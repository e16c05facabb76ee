"""The audit trail: who did what to which record, when, from where and why. Rows are only ever added."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from models.tables._types import Json, Timestamp


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Timestamp(default_now=True, index=True)
    actor_user_id: str | None = Field(default=None, max_length=40, index=True)
    action: str = Field(max_length=64, index=True)
    subject_type: str = Field(max_length=32)
    subject_id: str = Field(max_length=100, index=True)
    reason: str | None = None
    detail: dict[str, Any] = Json()
    client_ip: str | None = Field(default=None, max_length=64)
    request_id: str | None = Field(default=None, max_length=64)

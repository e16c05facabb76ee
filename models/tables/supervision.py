"""What the provincial supervision platform last answered for each record sent to it (8.6.6)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Index
from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


class SupervisionRecordState(SQLModel, table=True):
    """One row per record ever sent: the version (digest) the platform last received and its answer to it."""

    __tablename__ = "supervision_records"
    __table_args__ = (
        CheckConstraint("kind IN ('revisit', 'prescription')", name="supervision_record_kind"),
        CheckConstraint("status IN ('accepted', 'rejected')", name="supervision_record_status"),
        # The operators' list: a day's records of a kind, rejected ones first.
        Index("ix_supervision_records_day", "day", "kind", "status"),
    )

    kind: str = Field(primary_key=True, max_length=16)
    record_id: str = Field(primary_key=True, max_length=80)
    # The Beijing day whose upload last sent it.
    day: date
    digest: str = Field(max_length=64)
    status: str = Field(max_length=16)
    code: str | None = Field(default=None, max_length=40)
    reason: str | None = None
    platform_ref: str = Field(max_length=64)
    # How many times a version of it was sent.
    sends: int = 1
    uploaded_at: datetime = Timestamp()

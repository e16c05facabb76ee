"""No-shows and booking blocks (8.6.8): a patient who misses visits is blocked from booking for a while."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from models.tables._types import Json, Timestamp


class NoShow(SQLModel, table=True):
    __tablename__ = "no_shows"

    visit_id: str = Field(primary_key=True, foreign_key="visits.id", max_length=80)
    patient_id: str = Field(foreign_key="patients.id", index=True)
    doctor_id: str = Field(foreign_key="doctors.id")
    slot_starts_at: datetime = Timestamp()
    recorded_at: datetime = Timestamp(default_now=True, index=True)


class BookingBlock(SQLModel, table=True):
    """A block on booking, with the rule that caused it; lifting it after an appeal records who, when and why."""

    __tablename__ = "booking_blocks"

    id: int | None = Field(default=None, primary_key=True)
    patient_id: str = Field(foreign_key="patients.id", index=True)
    blocked_from: datetime = Timestamp(default_now=True)
    blocked_until: datetime = Timestamp(index=True)
    reason: str
    rule: dict[str, Any] = Json()
    lifted_at: datetime | None = Timestamp(nullable=True)
    lifted_by: str | None = Field(default=None, max_length=40)
    lift_reason: str | None = None

"""Slots (号源). A slot moves open → held (payment window) → booked, or back to open when a hold lapses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint
from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


class Slot(SQLModel, table=True):
    __tablename__ = "slots"
    __table_args__ = (CheckConstraint("status IN ('open', 'held', 'booked')", name="slot_status"),)

    id: str = Field(primary_key=True, max_length=40)
    doctor_id: str = Field(foreign_key="doctors.id", index=True)
    starts_at: datetime = Timestamp(index=True)
    ends_at: datetime = Timestamp()
    fee_fen: int = Field(ge=0)
    service_type: str = Field(default="text", max_length=16)
    disease_code: str = Field(foreign_key="diseases.code")
    status: str = Field(default="open", max_length=8)
    visit_id: str | None = Field(default=None, max_length=80)
    patient_id: str | None = Field(default=None, max_length=40)
    held_until: datetime | None = Timestamp(nullable=True)

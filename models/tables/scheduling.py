"""Schedules (排班) and slots (号源).

A schedule is one session of one doctor: a time window cut into slots of equal length, a capacity, a fee, a service
type and the disease its slots are for. A slot moves open → held (payment window) → booked, or back to open when a
hold lapses. Extra slots (加号) are slots flagged `is_extra`, capped per schedule, each recording who added it, when
and why, and optionally reserved for one named patient.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Index, text
from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


class Schedule(SQLModel, table=True):
    __tablename__ = "schedules"
    __table_args__ = (
        CheckConstraint("status IN ('published', 'cancelled', 'substituted')", name="schedule_status"),
        CheckConstraint("ends_at > starts_at", name="schedule_window"),
    )

    id: str = Field(primary_key=True, max_length=60)
    doctor_id: str = Field(foreign_key="doctors.id", index=True)
    day: date = Field(index=True)
    starts_at: datetime = Timestamp()
    ends_at: datetime = Timestamp()
    slot_minutes: int = Field(gt=0)
    capacity: int = Field(ge=0)
    extra_cap: int = Field(default=0, ge=0, sa_column_kwargs={"server_default": "0"})
    fee_fen: int = Field(ge=0)
    service_type: str = Field(default="text", max_length=16)
    disease_code: str = Field(foreign_key="diseases.code")
    status: str = Field(default="published", max_length=16, sa_column_kwargs={"server_default": "published"})
    substitute_doctor_id: str | None = Field(default=None, foreign_key="doctors.id")
    note: str = Field(default="", sa_column_kwargs={"server_default": ""})
    created_at: datetime = Timestamp(default_now=True)
    updated_at: datetime = Timestamp(default_now=True)


class Slot(SQLModel, table=True):
    __tablename__ = "slots"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'held', 'booked', 'closed')", name="slot_status"),
        # A refused booking's next free slots of the doctor: open ones in start order, and held ones whose hold lapsed.
        Index("ix_slots_doctor_open", "doctor_id", "starts_at", postgresql_where=text("status = 'open'")),
        Index("ix_slots_doctor_held", "doctor_id", "held_until", postgresql_where=text("status = 'held'")),
    )

    id: str = Field(primary_key=True, max_length=60)
    schedule_id: str | None = Field(default=None, foreign_key="schedules.id", index=True)
    doctor_id: str = Field(foreign_key="doctors.id", index=True)
    starts_at: datetime = Timestamp(index=True)
    ends_at: datetime = Timestamp()
    fee_fen: int = Field(ge=0)
    service_type: str = Field(default="text", max_length=16)
    disease_code: str = Field(foreign_key="diseases.code")
    status: str = Field(default="open", max_length=8)
    # Indexed: the hold is how a patient reaches their visit before its flow has recorded it.
    visit_id: str | None = Field(default=None, max_length=80, index=True)
    patient_id: str | None = Field(default=None, max_length=40)
    held_until: datetime | None = Timestamp(nullable=True)
    is_extra: bool = Field(default=False, sa_column_kwargs={"server_default": "false"})
    # For an extra slot the doctor adds for one named patient: only that patient may book it.
    reserved_for: str | None = Field(default=None, foreign_key="patients.id")
    added_by: str | None = Field(default=None, max_length=40)
    added_reason: str | None = None
    created_at: datetime = Timestamp(default_now=True)


class ScheduleChange(SQLModel, table=True):
    """A doctor's leave (停诊) or substitution (替诊) of one schedule, and how far its notices and remedies got."""

    __tablename__ = "schedule_changes"
    __table_args__ = (CheckConstraint("kind IN ('leave', 'substitution')", name="schedule_change_kind"),)

    id: str = Field(primary_key=True, max_length=80)
    schedule_id: str = Field(foreign_key="schedules.id", index=True)
    kind: str = Field(max_length=16)
    substitute_doctor_id: str | None = Field(default=None, foreign_key="doctors.id")
    reason: str
    requested_by: str = Field(max_length=40)
    status: str = Field(default="in_progress", max_length=16)
    affected_visits: int = 0
    created_at: datetime = Timestamp(default_now=True)
    finished_at: datetime | None = Timestamp(nullable=True)

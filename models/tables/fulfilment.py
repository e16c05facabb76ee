"""Dispensing and delivery of one paid prescription."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.tables._types import Json, Timestamp


class Fulfilment(SQLModel, table=True):
    __tablename__ = "fulfilments"

    prescription_id: str = Field(primary_key=True, foreign_key="prescriptions.id", max_length=80)
    patient_id: str = Field(foreign_key="patients.id", index=True)
    stage: str = Field(max_length=16, index=True)
    pickup: str = Field(max_length=16)
    pharmacy_order_no: str | None = Field(default=None, max_length=64)
    waybill_no: str | None = Field(default=None, max_length=64, index=True)
    pickup_code_enc: str | None = None
    failed_attempts: int = 0
    events: list[Any] = Json(default=[])
    signed_at: datetime | None = Timestamp(nullable=True)
    updated_at: datetime = Timestamp(default_now=True)
    # Where routing sent it and why (a partner pharmacy's id, or "hospital"); null for flows from before routing.
    pharmacy_id: str | None = Field(default=None, max_length=40, index=True)
    pharmacy_reason: str | None = None
    # The dispensing pharmacist's signed re-check (a models.fulfilment.Recheck).
    recheck: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    # When the patient will be reminded that the medicine runs out (续方提醒).
    refill_remind_at: datetime | None = Timestamp(nullable=True)

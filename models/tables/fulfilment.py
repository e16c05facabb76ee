"""Dispensing and delivery of one paid prescription."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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

"""A patient's eligibility for online follow-up of one disease, with the evidence it rests on (8.1.2.2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from models.tables._types import Json, Timestamp


class RevisitEligibility(SQLModel, table=True):
    __tablename__ = "revisit_eligibility"

    patient_id: str = Field(primary_key=True, foreign_key="patients.id", max_length=40)
    disease_code: str = Field(primary_key=True, max_length=32)
    disease_name: str | None = None
    status: str = Field(max_length=16)
    evidence: list[Any] = Json(default=[])
    reason: str | None = None
    decided_at: datetime = Timestamp(default_now=True)
    valid_until: datetime | None = Timestamp(nullable=True)

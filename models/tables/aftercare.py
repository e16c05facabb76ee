"""Adverse reaction reports (8.3.9.4): the read model the AdverseReaction workflow keeps."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


class AdverseReactionReport(SQLModel, table=True):
    __tablename__ = "adverse_reaction_reports"

    id: str = Field(primary_key=True, max_length=80)
    prescription_id: str = Field(foreign_key="prescriptions.id", index=True, max_length=80)
    patient_id: str = Field(foreign_key="patients.id", index=True)
    severity: str = Field(max_length=16)
    symptoms: str
    began_at: datetime | None = Timestamp(nullable=True)
    stage: str = Field(max_length=16, index=True)
    overdue: bool = False
    responded_by: str | None = Field(default=None, max_length=40)
    response_action: str | None = Field(default=None, max_length=16)
    response_advice: str | None = None
    responded_at: datetime | None = Timestamp(nullable=True)
    reported_at: datetime = Timestamp(default_now=True)
    updated_at: datetime = Timestamp(default_now=True)

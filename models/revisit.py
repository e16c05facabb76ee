"""Revisit eligibility (复诊预判, 8.1.2)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel


class RevisitStatus(StrEnum):
    CHECKING = "checking"
    ELIGIBLE = "eligible"
    NOT_ELIGIBLE = "not_eligible"
    EXPIRED = "expired"


class RevisitCheckInput(BaseModel):
    patient_id: str
    disease_code: str
    window_days: int
    valid_days: int


class OfflineDiagnosis(BaseModel):
    """One diagnosis the hospital's HIS/EMR holds from an offline visit."""

    encounter_id: str
    disease_code: str
    disease_name: str
    diagnosed_at: datetime
    department: str
    doctor_name: str


class RevisitEvidenceQuery(BaseModel):
    patient_id: str
    disease_code: str
    since: datetime


class RevisitDecision(BaseModel):
    patient_id: str
    disease_code: str
    status: RevisitStatus
    disease_name: str | None = None
    evidence: list[OfflineDiagnosis] = []
    decided_at: datetime | None = None
    valid_until: datetime | None = None
    reason: str | None = None

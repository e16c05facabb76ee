"""Revisit eligibility (复诊预判, 8.1.2)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class RevisitStatus(StrEnum):
    CHECKING = "checking"
    ELIGIBLE = "eligible"
    NOT_ELIGIBLE = "not_eligible"
    EXPIRED = "expired"
    # No offline diagnosis found yet, but the patient uploaded records that a doctor has still to review.
    PENDING_REVIEW = "pending_review"


class EvidenceSource(StrEnum):
    HIS = "his"
    EMR = "emr"
    # The regional health-record platform (区域全民健康信息平台), 8.1.2.2 c.
    REGIONAL = "regional"
    # Records the patient uploaded and a doctor approved, 8.1.2.2 a.
    UPLOAD = "upload"


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
    # Where it was found; None in decisions made before sources were told apart.
    source: EvidenceSource | None = None


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


class UploadSubmitted(BaseModel):
    """A record the patient uploaded for this disease, to be reviewed."""

    upload_id: str


class UploadReview(BaseModel):
    """A doctor's decision on an uploaded record: approved, it counts as evidence of the offline diagnosis."""

    upload_id: str
    reviewer_id: str
    approve: bool
    reason: str = Field(default="", max_length=500)

"""A patient's eligibility for online follow-up of one disease, with the evidence it rests on (8.1.2.2)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Column, Index, LargeBinary
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


class RevisitUpload(SQLModel, table=True):
    """A record the patient uploaded as evidence of an offline diagnosis (8.1.2.2 a): an image or PDF, sealed at rest
    (SM4-GCM bound to its id, see api/services/sealed_files.py) with the SM3 digest of its plaintext, which is also on
    the evidence ledger. A doctor approves or rejects it; approved, it counts as evidence for the disease."""

    __tablename__ = "revisit_uploads"
    __table_args__ = (
        CheckConstraint("kind IN ('image', 'pdf')", name="revisit_upload_kind"),
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="revisit_upload_status"),
        CheckConstraint("size_bytes > 0", name="revisit_upload_size"),
        Index("ix_revisit_uploads_patient_disease", "patient_id", "disease_code"),
    )

    id: str = Field(primary_key=True, max_length=40)
    patient_id: str = Field(foreign_key="patients.id", max_length=40)
    disease_code: str = Field(foreign_key="diseases.code", max_length=32)
    kind: str = Field(max_length=8)
    content_type: str = Field(max_length=64)
    size_bytes: int
    sm3: str = Field(max_length=64)
    data_enc: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # The day of the offline visit the record documents (the patient says; the reviewer checks).
    visited_on: date
    status: str = Field(default="pending", max_length=16, index=True)
    reviewed_by: str | None = Field(default=None, foreign_key="doctors.id", max_length=40)
    review_reason: str | None = None
    reviewed_at: datetime | None = Timestamp(nullable=True)
    # The leaf of the evidence ledger that holds the digest.
    ledger_seq: int | None = None
    uploaded_at: datetime = Timestamp(default_now=True)

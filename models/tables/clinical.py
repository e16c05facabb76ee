"""Visits, medical records and prescriptions: the read model the Visit and Prescription workflows keep current."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.tables._types import Json, Timestamp


class Visit(SQLModel, table=True):
    __tablename__ = "visits"

    id: str = Field(primary_key=True, max_length=80)
    patient_id: str = Field(foreign_key="patients.id", index=True)
    doctor_id: str = Field(foreign_key="doctors.id", index=True)
    slot_id: str = Field(foreign_key="slots.id", index=True)
    disease_code: str = Field(max_length=32)
    stage: str = Field(max_length=24, index=True)
    fee_fen: int = Field(ge=0)
    starts_at: datetime = Timestamp()
    bill_id: str | None = Field(default=None, max_length=80)
    his_registration_no: str | None = Field(default=None, max_length=40)
    queue_no: int | None = None
    abort_reason: str | None = None
    # The doctor's advice when aborting (8.2.3.3).
    abort_advice: str | None = None
    created_at: datetime = Timestamp(default_now=True)
    updated_at: datetime = Timestamp(default_now=True)


class MedicalRecord(SQLModel, table=True):
    __tablename__ = "medical_records"

    visit_id: str = Field(primary_key=True, foreign_key="visits.id", max_length=80)
    patient_id: str = Field(foreign_key="patients.id", index=True)
    doctor_id: str = Field(foreign_key="doctors.id", index=True)
    content: dict[str, Any] = Json()
    digest: str = Field(max_length=64)
    written_at: datetime = Timestamp(default_now=True)
    # The doctor's signature (a models.signature.SignatureRecord); once set the record never changes again.
    signature: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    signed_at: datetime | None = Timestamp(nullable=True)


class MedicalRecordAddendum(SQLModel, table=True):
    """补充记录: what the doctor adds to a signed record, each signed on its own."""

    __tablename__ = "medical_record_addenda"

    id: int | None = Field(default=None, primary_key=True)
    visit_id: str = Field(foreign_key="medical_records.visit_id", index=True, max_length=80)
    doctor_id: str = Field(foreign_key="doctors.id")
    text: str
    written_at: datetime = Timestamp()
    signature: dict[str, Any] = Json()


class Prescription(SQLModel, table=True):
    __tablename__ = "prescriptions"

    id: str = Field(primary_key=True, max_length=80)
    visit_id: str = Field(foreign_key="visits.id", index=True)
    patient_id: str = Field(foreign_key="patients.id", index=True)
    doctor_id: str = Field(foreign_key="doctors.id", index=True)
    stage: str = Field(max_length=24, index=True)
    revision: int = 0
    draft: dict[str, Any] = Json()
    verdict: str | None = Field(default=None, max_length=16)
    findings: list[Any] = Json(default=[])
    signatures: list[Any] = Json(default=[])
    total_fen: int | None = None
    pickup: str | None = Field(default=None, max_length=16)
    address_enc: str | None = None
    recipient_enc: str | None = None
    phone_enc: str | None = None
    bill_id: str | None = Field(default=None, max_length=80)
    reviewed_by: str | None = Field(default=None, max_length=40)
    review_reason: str | None = None
    # The review queue (8.3.1): when the version under review was signed, who holds it and until when.
    submitted_at: datetime | None = Timestamp(nullable=True)
    claimed_by: str | None = Field(default=None, max_length=40)
    claim_expires_at: datetime | None = Timestamp(nullable=True)
    # Re-signed unchanged over the pharmacist's return, with the doctor's justification (8.3.1.4).
    forced: bool = Field(default=False, sa_column_kwargs={"server_default": "false"})
    forced_reason: str | None = None
    # 续方: the earlier prescription whose items this one repeats.
    renewed_from: str | None = Field(default=None, max_length=80)
    # The patient's choices for dispensing (8.3.6.2): a partner pharmacy, and whether it decocts (代煎).
    pharmacy_choice: str | None = Field(default=None, max_length=40)
    decoction_service: bool = Field(default=False, sa_column_kwargs={"server_default": "false"})
    created_at: datetime = Timestamp(default_now=True)
    updated_at: datetime = Timestamp(default_now=True)

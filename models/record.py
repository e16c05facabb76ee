"""The signed TCM medical record as patients and doctors download it (8.2.4, 8.2.5)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

from core.crypto.sm import sm3_hex
from models.prescription import RxItem
from models.signature import SignatureRecord, canonical_json
from models.visit import TcmRecord


def record_digest(visit_id: str, doctor_id: str, content: dict[str, Any], signed_at: datetime) -> str:
    """What the doctor signs: the record as stored, whose visit and whose it is, and when."""
    signed = {"visit_id": visit_id, "doctor_id": doctor_id, "record": content, "signed_at": signed_at.isoformat()}
    return sm3_hex(canonical_json(signed))


def addendum_digest(visit_id: str, doctor_id: str, text: str, written_at: datetime, record: str) -> str:
    """An addendum's digest, chained to the digest of the signed record it adds to."""
    signed = {
        "visit_id": visit_id,
        "doctor_id": doctor_id,
        "addendum": text,
        "written_at": written_at.isoformat(),
        "record_digest": record,
    }
    return sm3_hex(canonical_json(signed))


class RecordPerson(BaseModel):
    id: str
    name: str


class RecordPatient(RecordPerson):
    sex: str | None = None  # "male" | "female" | None when unknown
    birth_date: date | None = None


class RecordDoctor(RecordPerson):
    title: str | None = None  # 职称, e.g. 主任医师


class RecordPrescription(BaseModel):
    """方药: a prescription issued in this visit, as the record cites it."""

    prescription_id: str
    items: list[RxItem]
    doses: int
    usage: str


class SignRecord(BaseModel):
    doctor_id: str


class RecordAddendum(BaseModel):
    """A later correction or addition (补充记录); the signed record itself never changes."""

    text: str
    written_at: datetime
    doctor_id: str
    signature: SignatureRecord | None = None


class RecordDocument(BaseModel):
    visit_id: str
    hospital_name: str
    department: str
    patient: RecordPatient
    doctor: RecordDoctor
    visited_at: datetime
    record: TcmRecord
    prescriptions: list[RecordPrescription] = []
    # Set once the doctor signed; from then on the record is locked and changes are addenda.
    signature: SignatureRecord | None = None
    addenda: list[RecordAddendum] = []

"""Checking a prescription's signatures after the fact (8.2.6.5): each must be its signer's SM2 signature over the
prescription as stored, timestamped by a TSA the hospital trusts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from asn1crypto import x509
from pydantic import BaseModel

from api.services.signature_checks import signature_state
from models.prescription import PrescriptionDraft, SignRequest
from models.signature import SignatureRecord
from models.tables import Prescription


class SignatureCheck(BaseModel):
    signer_id: str
    signed_at: datetime
    reason: str | None
    algorithm: str | None
    key_id: str | None
    timestamped_at: datetime | None
    tsa: str | None
    valid: bool
    # Why not, in zh-CN, when `valid` is false.
    problem: str | None = None


def check_signatures(row: Prescription, anchors: Sequence[x509.Certificate]) -> list[SignatureCheck]:
    draft = PrescriptionDraft.model_validate(row.draft)
    return [_check(row, draft, SignatureRecord.model_validate(stored), anchors) for stored in row.signatures]


def _check(
    row: Prescription, draft: PrescriptionDraft, record: SignatureRecord, anchors: Sequence[x509.Certificate]
) -> SignatureCheck:
    signed = SignRequest(
        prescription_id=row.id,
        revision=row.revision,
        patient_id=row.patient_id,
        draft=draft,
        signer_id=record.signer_id,
        reason=record.reason,
    )
    state = signature_state(record, signed.digest(record.signed_at), anchors, "处方")
    signature, timestamp = record.signature, record.timestamp
    return SignatureCheck(
        signer_id=record.signer_id,
        signed_at=record.signed_at,
        reason=record.reason,
        algorithm=signature.algorithm if signature else None,
        key_id=signature.key_id if signature else None,
        timestamped_at=timestamp.gen_time if timestamp else None,
        tsa=timestamp.tsa if timestamp else None,
        valid=state.valid,
        problem=state.problem,
    )

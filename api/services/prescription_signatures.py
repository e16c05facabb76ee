"""Checking a prescription's signatures after the fact (8.2.6.5): each must be its signer's SM2 signature over the
prescription as stored, timestamped by a TSA the hospital trusts. The dispensing pharmacist's re-check (8.3.7.2) is
checked the same way, over the prescription with the decision and the pharmacy."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from asn1crypto import x509
from pydantic import BaseModel

from api.services.signature_checks import signature_state
from models.fulfilment import Recheck, RecheckSignRequest
from models.prescription import PrescriptionDraft, SignRequest
from models.signature import SignatureRecord
from models.tables import Fulfilment, Prescription


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


def check_signatures(
    row: Prescription, anchors: Sequence[x509.Certificate], fulfilment: Fulfilment | None = None
) -> list[SignatureCheck]:
    draft = PrescriptionDraft.model_validate(row.draft)
    checks = []
    for stored in row.signatures:
        record = SignatureRecord.model_validate(stored)
        checks.append(_check(_signed(row, draft, record), record, anchors))
    if fulfilment is not None and fulfilment.recheck is not None:
        recheck = Recheck.model_validate(fulfilment.recheck)
        signed = RecheckSignRequest(
            **_signed(row, draft, recheck.signature).model_dump(),
            pharmacy_id=recheck.pharmacy_id,
            approve=recheck.approve,
        )
        checks.append(_check(signed, recheck.signature, anchors))
    return checks


def _signed(row: Prescription, draft: PrescriptionDraft, record: SignatureRecord) -> SignRequest:
    return SignRequest(
        prescription_id=row.id,
        revision=row.revision,
        patient_id=row.patient_id,
        draft=draft,
        signer_id=record.signer_id,
        reason=record.reason,
    )


def _check(signed: SignRequest, record: SignatureRecord, anchors: Sequence[x509.Certificate]) -> SignatureCheck:
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

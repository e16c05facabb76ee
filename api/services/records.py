"""The TCM medical record as its readers get it (8.2.4, 8.2.5): assembled from the read model, each signature
checked again, every read audited."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.exceptions import ApplicationError

from activities.adapters.errors import AdapterError
from activities.signatures import Signatures
from api.auth import Actor
from api.context import AppContext
from api.errors import Problem
from api.services.access import visible_visit
from api.services.audit import audit, audit_read
from api.services.signature_checks import SignatureState, signature_state
from core.ledger.service import EvidenceLedger
from models.prescription import PrescriptionDraft
from models.record import (
    RecordAddendum,
    RecordDoctor,
    RecordDocument,
    RecordPatient,
    RecordPrescription,
    addendum_digest,
    record_digest,
)
from models.signature import SignatureRecord
from models.tables import Department, Doctor, MedicalRecord, MedicalRecordAddendum, Patient, Prescription, Visit
from models.visit import TcmRecord


async def _record_row(session: AsyncSession, visit_id: str) -> MedicalRecord:
    row = await session.get(MedicalRecord, visit_id)
    if row is None:
        raise Problem(404, "NOT_FOUND", "病历不存在", "该次复诊尚未书写病历")
    return row


async def load_document(ctx: AppContext, session: AsyncSession, actor: Actor, visit_id: str) -> RecordDocument:
    """The record of a visit the actor may see (404 otherwise), with its prescriptions and addenda."""
    visit = await visible_visit(session, actor, visit_id)
    row = await _record_row(session, visit_id)
    patient = await session.get(Patient, visit.patient_id)
    doctor = await session.get(Doctor, row.doctor_id)
    assert patient is not None and doctor is not None  # foreign keys
    department = await session.get(Department, doctor.department_id)
    prescriptions = (
        await session.execute(
            select(Prescription).where(col(Prescription.visit_id) == visit_id).order_by(col(Prescription.created_at))
        )
    ).scalars()
    addenda = (
        await session.execute(
            select(MedicalRecordAddendum)
            .where(col(MedicalRecordAddendum.visit_id) == visit_id)
            .order_by(col(MedicalRecordAddendum.id))
        )
    ).scalars()
    return RecordDocument(
        visit_id=visit_id,
        hospital_name=ctx.settings.hospital_name,
        department=department.name if department else "",
        patient=RecordPatient(
            id=patient.id,
            name=ctx.cipher.decrypt("name", patient.name_enc) or "",
            sex=patient.sex,
            birth_date=patient.birth_date,
        ),
        doctor=RecordDoctor(id=doctor.id, name=doctor.name, title=doctor.title),
        visited_at=visit.starts_at,
        record=TcmRecord.model_validate(row.content),
        prescriptions=[_cited(rx) for rx in prescriptions if rx.stage != "void"],
        signature=SignatureRecord.model_validate(row.signature) if row.signature else None,
        addenda=[
            RecordAddendum(
                text=a.text,
                written_at=a.written_at,
                doctor_id=a.doctor_id,
                signature=SignatureRecord.model_validate(a.signature),
            )
            for a in addenda
        ],
    )


def _cited(rx: Prescription) -> RecordPrescription:
    draft = PrescriptionDraft.model_validate(rx.draft)
    return RecordPrescription(prescription_id=rx.id, items=draft.items, doses=draft.doses, usage=draft.usage)


class RecordView(BaseModel):
    document: RecordDocument
    signed: bool
    signature_state: SignatureState | None
    addenda_states: list[SignatureState]


async def record_view(
    ctx: AppContext, session: AsyncSession, actor: Actor, visit_id: str, request: Request
) -> tuple[RecordDocument, RecordView]:
    """The document and each signature checked now; the read is audited (who read whose record, from where)."""
    document = await load_document(ctx, session, actor, visit_id)
    row = await _record_row(session, visit_id)
    anchors = list(ctx.adapters.tsa.trust_anchors)
    signed = document.signature
    state = None
    if signed is not None and row.signed_at is not None:
        state = signature_state(
            signed, record_digest(visit_id, row.doctor_id, row.content, row.signed_at), anchors, "病历"
        )
    addenda_states = [
        signature_state(
            addendum.signature,
            addendum_digest(visit_id, addendum.doctor_id, addendum.text, addendum.written_at, signed.digest),
            anchors,
            "补充记录",
        )
        if addendum.signature is not None and signed is not None
        else SignatureState(valid=False, problem="补充记录未签名")
        for addendum in document.addenda
    ]
    await audit_read(session, actor, "medical_record", visit_id, document.patient.id, request)
    view = RecordView(
        document=document, signed=signed is not None, signature_state=state, addenda_states=addenda_states
    )
    return document, view


async def add_addendum(
    ctx: AppContext, session: AsyncSession, actor: Actor, visit_id: str, text: str, request: Request
) -> RecordAddendum:
    """The visit's doctor adds a signed addendum to the signed record. Signed here, in the request: the visit's flow
    may have ended long ago, and the doctor waits for the signature anyway; if the signer or the TSA fails, nothing
    is stored and the doctor may try again."""
    visit: Visit = await visible_visit(session, actor, visit_id)
    row = await _record_row(session, visit_id)
    if actor.ref != row.doctor_id:
        raise Problem(403, "FORBIDDEN", "无权添加补充记录", "只有书写该病历的医生可以添加补充记录")
    if row.signature is None:
        raise Problem(409, "RECORD_NOT_SIGNED", "病历尚未签名", "病历签名前请直接修改病历，签名后才需要补充记录")
    written_at = datetime.now(UTC)
    record = SignatureRecord.model_validate(row.signature)
    digest = addendum_digest(visit_id, row.doctor_id, text, written_at, record.digest)
    try:
        signatures = Signatures(ctx.adapters.signer, ctx.adapters.tsa, EvidenceLedger(ctx.sessions))
        signature = await signatures.sign(
            row.doctor_id, digest, written_at, None, kind="record.addendum", subject=f"visit:{visit_id}"
        )
    except (AdapterError, ApplicationError) as failed:
        raise Problem(
            503, "SIGNING_UNAVAILABLE", "电子签名服务暂不可用", "签名或可信时间戳服务暂时不可用，请稍后重试"
        ) from failed
    session.add(
        MedicalRecordAddendum(
            visit_id=visit_id,
            doctor_id=row.doctor_id,
            text=text,
            written_at=written_at,
            signature=signature.model_dump(mode="json"),
        )
    )
    audit(
        session,
        actor,
        "medical_record.addendum",
        "visit",
        visit.id,
        detail={"patient_id": visit.patient_id},
        request=request,
    )
    await session.commit()
    return RecordAddendum(text=text, written_at=written_at, doctor_id=row.doctor_id, signature=signature)

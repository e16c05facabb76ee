"""What a doctor sees of the patient before accepting (8.2.1.3, 8.2.3.1): who they are, the revisit decision and
its evidence, their earlier signed records and the records they uploaded, with warnings (a child under six, a
revisit decision no longer in force). The read is audited, naming every record and upload shown."""

from __future__ import annotations

from datetime import datetime

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import Actor
from api.context import AppContext
from api.schemas.doctor_day import EarlierRecord, PreviewPatient, VisitPreview
from api.services.access import visible_visit
from api.services.audit import audit
from api.services.revisit_checks import stored_decision
from api.services.revisit_uploads import upload_out
from api.services.worklist import patient_facts
from models.common import HOSPITAL_TZ
from models.guardian import age_in_years, needs_guardian
from models.revisit import RevisitStatus
from models.tables import (
    Department,
    Disease,
    Doctor,
    MedicalRecord,
    Patient,
    RevisitEligibility,
    RevisitUpload,
    Visit,
    VisitGuardian,
)
from models.visit import TcmRecord, VisitStage

EARLIER_RECORDS = 20
UPLOADS = 50


async def visit_preview(
    ctx: AppContext, session: AsyncSession, actor: Actor, visit_id: str, request: Request
) -> VisitPreview:
    visit = await visible_visit(session, actor, visit_id)
    patient = await session.get(Patient, visit.patient_id)
    assert patient is not None  # foreign key
    name, sex, birth = patient_facts(ctx.cipher, patient)
    today = datetime.now(HOSPITAL_TZ).date()
    age = age_in_years(birth, today) if birth else None
    child = needs_guardian(birth, today)
    guardian = await session.get(VisitGuardian, visit_id) is not None
    disease = await session.get(Disease, visit.disease_code)
    eligibility = await session.get(RevisitEligibility, (visit.patient_id, visit.disease_code))
    revisit = stored_decision(eligibility) if eligibility is not None else None
    earlier = await _earlier_records(session, visit)
    uploads = (
        await session.execute(
            select(RevisitUpload)
            .where(col(RevisitUpload.patient_id) == visit.patient_id)
            .order_by(col(RevisitUpload.uploaded_at).desc())
            .limit(UPLOADS)
        )
    ).scalars()
    shown = [upload_out(row) for row in uploads]

    warnings = []
    if child:
        warnings.append(
            f"患儿{age}岁，未满6周岁：开具处方前须核验陪同就诊的监护人身份并登记监护人及陪诊医师信息"
            + ("（已登记）。" if guardian else "。")
        )
    if revisit is None or revisit.status is not RevisitStatus.ELIGIBLE:
        warnings.append("该病种的复诊资格当前未处于有效状态，请核实复诊依据后再决定是否接诊。")

    audit(
        session,
        actor,
        "visit_preview.read",
        "visit",
        visit_id,
        detail={
            "patient_id": visit.patient_id,
            "records": [record.visit_id for record in earlier],
            "uploads": [upload.upload_id for upload in shown],
        },
        request=request,
    )
    await session.commit()
    return VisitPreview(
        visit_id=visit.id,
        stage=VisitStage(visit.stage),
        role="attending" if visit.doctor_id == actor.ref else "consultant",
        starts_at=visit.starts_at,
        disease_code=visit.disease_code,
        disease_name=disease.name if disease else None,
        patient=PreviewPatient(patient_id=patient.id, name=name, sex=sex, birth_date=birth, age=age),
        child_under_six=child,
        guardian_recorded=guardian,
        warnings=warnings,
        revisit=revisit,
        earlier_records=earlier,
        uploads=shown,
    )


async def _earlier_records(session: AsyncSession, visit: Visit) -> list[EarlierRecord]:
    """The patient's signed records of other visits, by whichever doctor, newest first."""
    rows = await session.execute(
        select(MedicalRecord, col(Visit.starts_at), col(Doctor.name), col(Department.name))
        .join(Visit, col(Visit.id) == col(MedicalRecord.visit_id))
        .join(Doctor, col(Doctor.id) == col(MedicalRecord.doctor_id))
        .outerjoin(Department, col(Department.id) == col(Doctor.department_id))
        .where(
            col(MedicalRecord.patient_id) == visit.patient_id,
            col(MedicalRecord.visit_id) != visit.id,
            col(MedicalRecord.signed_at).is_not(None),
        )
        .order_by(col(MedicalRecord.signed_at).desc())
        .limit(EARLIER_RECORDS)
    )
    return [
        EarlierRecord(
            visit_id=record.visit_id,
            visited_at=visited_at,
            doctor_name=doctor_name,
            department=department or "",
            record=TcmRecord.model_validate(record.content),
            signed_at=record.signed_at,
        )
        for record, visited_at, doctor_name, department in rows.all()
    ]

"""续方 (8.2.6.1): earlier prescriptions of a patient for the same disease that are safe to repeat now.

A prescription qualifies when it was completed (approved, dispensed and received), was written for a visit of the
same disease, and the rule pre-review of its items passes today for the patient as they are today (age from the ID
card; pregnancy and allergies as the earlier form recorded them). Findings that only warn are shown, not excluded;
anything asking for a second signature or blocking is excluded. Stock is checked when the renewal is prescribed.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from activities.rules.engine import default_engine
from api.errors import Problem
from core.crypto.sm import FieldCipher
from models.prescription import CheckResult, PrescriptionDraft, RxStage, Severity, Verdict
from models.tables import Patient, Prescription, Visit
from models.visit import VisitStage

CLEAN = (Verdict.PASS, Verdict.WARN)
# Only the latest few matter to a doctor choosing what to renew.
MAX_CANDIDATES = 20
_OPEN_VISIT = (VisitStage.WAITING_DOCTOR.value, VisitStage.IN_CONSULT.value)


async def open_visit_diseases(session: AsyncSession, doctor_id: str, patient_id: str) -> list[str]:
    """Diseases of this doctor's open visits with the patient, latest visit first (none: the patient is not theirs)."""
    rows = await session.execute(
        select(col(Visit.disease_code))
        .where(
            col(Visit.doctor_id) == doctor_id,
            col(Visit.patient_id) == patient_id,
            col(Visit.stage).in_(_OPEN_VISIT),
        )
        .order_by(col(Visit.starts_at).desc())
    )
    return list(rows.scalars())


async def check_now(
    session: AsyncSession, cipher: FieldCipher, patient_id: str, draft: PrescriptionDraft
) -> CheckResult:
    patient = await session.get(Patient, patient_id)
    id_card_no = cipher.decrypt("id_card", patient.id_card_enc) if patient and patient.id_card_enc else None
    if not id_card_no:
        raise Problem(409, "IDENTITY_MISSING", "患者尚未实名登记", "患者尚未完成实名信息登记，无法审核续方")
    return default_engine().check(draft.check_request(id_card_no, date.today()))


async def renewable(
    session: AsyncSession, cipher: FieldCipher, patient_id: str, disease_code: str
) -> list[tuple[Prescription, CheckResult]]:
    """Completed prescriptions of the patient for the disease whose items pass the rule check today, newest first."""
    rows = await session.execute(
        select(Prescription)
        .join(Visit, col(Visit.id) == col(Prescription.visit_id))
        .where(
            col(Prescription.patient_id) == patient_id,
            col(Prescription.stage) == RxStage.COMPLETED.value,
            col(Visit.disease_code) == disease_code,
        )
        .order_by(col(Prescription.created_at).desc())
        .limit(MAX_CANDIDATES)
    )
    found = []
    for rx in rows.scalars():
        check = await check_now(session, cipher, patient_id, PrescriptionDraft.model_validate(rx.draft))
        if check.verdict in CLEAN:
            found.append((rx, check))
    return found


async def renewal_source(
    session: AsyncSession, cipher: FieldCipher, visit: Visit, source_id: str
) -> tuple[Prescription, PrescriptionDraft]:
    """The earlier prescription to renew in `visit`, and its draft; refused unless it qualifies."""
    source = await session.get(Prescription, source_id)
    if source is None or source.patient_id != visit.patient_id:
        raise Problem(404, "NOT_FOUND", "未找到", "要续的处方不存在")
    source_visit = await session.get(Visit, source.visit_id)
    if source.stage != RxStage.COMPLETED.value:
        raise Problem(409, "RX_NOT_RENEWABLE", "该处方不能续方", "只能续已完成（已审核、调剂并签收）的处方")
    if source_visit is None or source_visit.disease_code != visit.disease_code:
        raise Problem(409, "RX_NOT_RENEWABLE", "该处方不能续方", "只能续本次复诊同一病种的处方")
    draft = PrescriptionDraft.model_validate(source.draft)
    check = await check_now(session, cipher, visit.patient_id, draft)
    if check.verdict not in CLEAN:
        problems = "；".join(f.message for f in check.findings if f.severity in (Severity.SIGN_AGAIN, Severity.BLOCK))
        raise Problem(409, "RX_NOT_RENEWABLE", "该处方不能续方", f"按当前审方规则，该处方需修改后另行开具：{problems}")
    return source, draft

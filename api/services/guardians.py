"""The guardian and the accompanying physician of a child under six (8.1.2.1 c): recorded by a doctor of the visit
before any prescription, stored encrypted (names and the ID-card number, as patients' are), read back masked, every
write and read audited."""

from __future__ import annotations

from datetime import datetime

from fastapi import Request
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from activities.visits import child_needs_guardian
from api.auth import Actor
from api.context import AppContext
from api.errors import Problem
from api.schemas.doctor_day import GuardianIn, GuardianOut
from api.services.access import visible_visit
from api.services.audit import audit, audit_read
from core.crypto.sm import mask
from models import idcard
from models.common import HOSPITAL_TZ
from models.guardian import age_in_years
from models.tables import Patient, VisitGuardian
from models.visit import VisitStage

ADULT_YEARS = 18
_OPEN = (VisitStage.WAITING_DOCTOR.value, VisitStage.IN_CONSULT.value)


async def record_guardian(
    ctx: AppContext, session: AsyncSession, actor: Actor, visit_id: str, body: GuardianIn, request: Request
) -> GuardianOut:
    """409 `VISIT_NOT_OPEN` after the consult, `GUARDIAN_NOT_REQUIRED` for a patient of six or older; 422
    `GUARDIAN_IS_PATIENT`, `GUARDIAN_NOT_ADULT`. Recording again replaces the earlier record (both are audited)."""
    visit = await visible_visit(session, actor, visit_id)
    if visit.stage not in _OPEN:
        raise Problem(409, "VISIT_NOT_OPEN", "复诊未在进行中", "只能在接诊前或接诊中登记监护人信息。")
    if not await child_needs_guardian(session, ctx.cipher, visit.patient_id):
        raise Problem(409, "GUARDIAN_NOT_REQUIRED", "无需登记监护人", "患者已满6周岁，无需登记陪同监护人。")
    patient = await session.get(Patient, visit.patient_id)
    id_index = ctx.cipher.blind_index("id_card", body.guardian_id_card_no)
    if patient is not None and patient.id_card_index == id_index:
        raise Problem(422, "GUARDIAN_IS_PATIENT", "监护人信息有误", "监护人身份证号与患儿本人相同。")
    if age_in_years(idcard.birth_date(body.guardian_id_card_no), datetime.now(HOSPITAL_TZ).date()) < ADULT_YEARS:
        raise Problem(422, "GUARDIAN_NOT_ADULT", "监护人信息有误", f"监护人须年满{ADULT_YEARS}周岁。")
    values = {
        "patient_id": visit.patient_id,
        "guardian_name_enc": ctx.cipher.encrypt("name", body.guardian_name),
        "guardian_id_card_enc": ctx.cipher.encrypt("id_card", body.guardian_id_card_no),
        "guardian_id_card_index": id_index,
        "relationship": body.relationship,
        "physician_name_enc": ctx.cipher.encrypt("name", body.physician_name),
        "physician_licence_no": body.physician_licence_no,
        "recorded_by": actor.ref,
        "recorded_at": datetime.now(HOSPITAL_TZ),
    }
    await session.execute(
        insert(VisitGuardian)
        .values(visit_id=visit_id, **values)
        .on_conflict_do_update(index_elements=["visit_id"], set_=values)
    )
    audit(
        session,
        actor,
        "visit_guardian.record",
        "visit",
        visit_id,
        detail={"patient_id": visit.patient_id},
        request=request,
    )
    await session.commit()
    return await _guardian_out(ctx, session, visit_id)


async def read_guardian(
    ctx: AppContext, session: AsyncSession, actor: Actor, visit_id: str, request: Request
) -> GuardianOut:
    visit = await visible_visit(session, actor, visit_id)
    answer = await _guardian_out(ctx, session, visit_id)
    await audit_read(session, actor, "visit_guardian", visit_id, visit.patient_id, request)
    return answer


async def _guardian_out(ctx: AppContext, session: AsyncSession, visit_id: str) -> GuardianOut:
    row = await session.get(VisitGuardian, visit_id, populate_existing=True)
    if row is None:
        raise Problem(404, "NOT_FOUND", "未找到", "本次复诊尚未登记监护人")
    number = ctx.cipher.decrypt("id_card", row.guardian_id_card_enc)
    return GuardianOut(
        visit_id=visit_id,
        guardian_name=ctx.cipher.decrypt("name", row.guardian_name_enc) or "",
        guardian_id_card_masked=mask(number, 3, 4) or "",
        relationship=row.relationship,
        physician_name=ctx.cipher.decrypt("name", row.physician_name_enc) or "",
        physician_licence_no=row.physician_licence_no,
        recorded_by=row.recorded_by,
        recorded_at=row.recorded_at,
    )

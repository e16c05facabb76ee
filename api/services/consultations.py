"""The doctors invited into a visit's consult (会诊, 8.2.3.5) and their opinions, each signature checked again now."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import Actor
from api.context import AppContext
from api.schemas.doctor_day import ConsultantOut
from api.services.access import visible_visit
from api.services.audit import audit_read
from api.services.signature_checks import signature_state
from models.consultation import opinion_digest
from models.signature import SignatureRecord
from models.tables import Department, Doctor, VisitConsultant


async def consultants_of(
    ctx: AppContext, session: AsyncSession, actor: Actor, visit_id: str, request: Request
) -> list[ConsultantOut]:
    visit = await visible_visit(session, actor, visit_id)
    rows = await session.execute(
        select(VisitConsultant, Doctor, col(Department.name))
        .join(Doctor, col(Doctor.id) == col(VisitConsultant.doctor_id))
        .outerjoin(Department, col(Department.id) == col(Doctor.department_id))
        .where(col(VisitConsultant.visit_id) == visit_id)
        .order_by(col(VisitConsultant.invited_at))
    )
    anchors = list(ctx.adapters.tsa.trust_anchors)
    answer = []
    for consultant, doctor, department in rows.all():
        state = None
        if consultant.opinion_signature is not None and consultant.opinion and consultant.opinion_at:
            signed = SignatureRecord.model_validate(consultant.opinion_signature)
            digest = opinion_digest(visit_id, doctor.id, consultant.opinion, consultant.opinion_at)
            state = signature_state(signed, digest, anchors, "会诊意见")
        answer.append(
            ConsultantOut(
                doctor_id=doctor.id,
                name=doctor.name,
                title=doctor.title,
                department=department or "",
                invited_by=consultant.invited_by,
                reason=consultant.reason,
                invited_at=consultant.invited_at,
                opinion=consultant.opinion,
                opinion_at=consultant.opinion_at,
                signature_state=state,
            )
        )
    await audit_read(session, actor, "consult_opinions", visit_id, visit.patient_id, request)
    return answer

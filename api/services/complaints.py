"""Complaints about an order (8.6.7 e): a patient complains about their own visit or prescription, which starts the
`Complaint` flow; staff holding the feedback permission list and answer them through that flow.

The complaint's row is what everyone reads; the flow writes its escalation and its answer there. Anything an actor
may not see does not exist for them (404): another patient's orders and complaints cannot be probed.
"""

from __future__ import annotations

import secrets

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import Client

from api.auth import Actor
from api.errors import Problem
from api.permissions import holds
from api.schemas.complaints import ComplaintIn, ComplaintOut
from api.services.access import not_found
from api.services.temporal_calls import workflow_call
from core.settings import Settings
from models.common import Role
from models.complaint import (
    CATEGORY_NAMES,
    ComplaintCategory,
    ComplaintInput,
    ComplaintResponse,
    ComplaintStatus,
    ComplaintSubject,
)
from models.permissions import Permission
from models.tables import Complaint, Prescription, Visit
from workflows.complaint import ComplaintWorkflow, complaint_workflow_id

_SUBJECTS: dict[ComplaintSubject, tuple[type[Visit] | type[Prescription], str]] = {
    ComplaintSubject.VISIT: (Visit, "在线复诊"),
    ComplaintSubject.PRESCRIPTION: (Prescription, "处方"),
}


def view(row: Complaint) -> ComplaintOut:
    category = ComplaintCategory(row.category)
    return ComplaintOut(
        id=row.id,
        patient_id=row.patient_id,
        subject_type=ComplaintSubject(row.subject_type),
        subject_id=row.subject_id,
        category=category,
        category_name=CATEGORY_NAMES[category],
        text=row.text,
        status=ComplaintStatus(row.status),
        response=row.response,
        responded_by=row.responded_by,
        responded_at=row.responded_at,
        escalated_at=row.escalated_at,
        created_at=row.created_at,
    )


async def create(
    session: AsyncSession, temporal: Client, settings: Settings, patient_id: str, body: ComplaintIn
) -> Complaint:
    """Store the complaint and start its flow, for the patient's own order only (404 for anyone else's)."""
    table, name = _SUBJECTS[body.subject_type]
    owner = await session.scalar(select(col(table.patient_id)).where(col(table.id) == body.subject_id))
    if owner != patient_id:
        raise not_found(name)
    row = Complaint(
        id=f"cmp-{secrets.token_hex(8)}",
        patient_id=patient_id,
        subject_type=body.subject_type.value,
        subject_id=body.subject_id,
        category=body.category.value,
        text=body.text,
    )
    session.add(row)
    await session.flush()
    # Started before the commit: a failed start leaves no open complaint that no flow would ever answer.
    await temporal.start_workflow(
        ComplaintWorkflow.run,
        ComplaintInput(
            complaint_id=row.id,
            patient_ref=f"patient:{patient_id}",
            subject=f"{name} {body.subject_id}",
            category_name=CATEGORY_NAMES[body.category],
            text=body.text,
            answer_within_s=settings.complaint_answer_within_s,
            remind_every_s=settings.complaint_remind_every_s,
        ),
        id=complaint_workflow_id(row.id),
        task_queue=settings.task_queue,
    )
    return row


async def get(session: AsyncSession, complaint_id: str) -> Complaint:
    row = await session.get(Complaint, complaint_id)
    if row is None:
        raise not_found("投诉")
    return row


async def visible(session: AsyncSession, pg: asyncpg.Pool, actor: Actor, complaint_id: str) -> tuple[Complaint, bool]:
    """The complaint for the patient who made it (own: True) or staff holding the feedback permission; else 404."""
    row = await session.get(Complaint, complaint_id)
    if row is not None and actor.role is Role.PATIENT and row.patient_id == actor.ref:
        return row, True
    if row is None or not await holds(pg, actor, Permission.FEEDBACK_MANAGE):
        raise not_found("投诉")
    return row, False


async def of_patient(session: AsyncSession, patient_id: str, limit: int, offset: int) -> tuple[list[ComplaintOut], int]:
    """The patient's own complaints, newest first."""
    where = col(Complaint.patient_id) == patient_id
    total = (await session.execute(select(func.count()).select_from(Complaint).where(where))).scalar_one()
    rows = await session.execute(
        select(Complaint)
        .where(where)
        .order_by(col(Complaint.created_at).desc(), col(Complaint.id).desc())
        .limit(limit)
        .offset(offset)
    )
    return [view(row) for row in rows.scalars()], total


async def queue(
    session: AsyncSession, status: ComplaintStatus, limit: int, offset: int
) -> tuple[list[ComplaintOut], int]:
    """Open complaints the longest waiting first (the work queue); answered ones the latest answer first."""
    where = col(Complaint.status) == status.value
    order = (
        (col(Complaint.created_at), col(Complaint.id))
        if status is ComplaintStatus.OPEN
        else (col(Complaint.responded_at).desc(), col(Complaint.id))
    )
    total = (await session.execute(select(func.count()).select_from(Complaint).where(where))).scalar_one()
    rows = await session.execute(select(Complaint).where(where).order_by(*order).limit(limit).offset(offset))
    return [view(row) for row in rows.scalars()], total


async def respond(session: AsyncSession, temporal: Client, complaint_id: str, answer: ComplaintResponse) -> Complaint:
    """Answer through the flow (which records it and tells the patient); 409 `COMPLAINT_ANSWERED` when answered."""
    row = await get(session, complaint_id)
    if row.status == ComplaintStatus.ANSWERED.value:
        # Known from the read model already; the flow's validator refuses the same (and decides between two racing).
        raise Problem(409, "COMPLAINT_ANSWERED", "操作未被接受", "该投诉已答复")
    await workflow_call(
        temporal.get_workflow_handle(complaint_workflow_id(complaint_id)).execute_update(
            ComplaintWorkflow.respond, answer
        ),
        missing="投诉不存在",
    )
    await session.refresh(row)
    return row

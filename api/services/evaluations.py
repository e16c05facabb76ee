"""Evaluations of a concluded visit (8.6.7): one per visit by its patient, within the window; public unless hidden
with a reason, never deleted; a low rating starts its follow-up flow."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import Client

from api.auth import Actor
from api.errors import Problem
from api.queries.listing import own_rows
from api.schemas.evaluations import EvaluationIn, RatingSummary, VisibilityIn
from api.services.access import not_found
from core.settings import Settings
from models.evaluation import LOW_RATING, EvaluationFollowUpInput
from models.tables import Doctor, Evaluation, Visit
from workflows.evaluation import EvaluationFollowUpWorkflow, evaluation_workflow_id

# Only a visit whose consult took place can be evaluated.
_EVALUABLE = ("finished",)


async def create(
    session: AsyncSession, settings: Settings, temporal: Client, visit: Visit, body: EvaluationIn
) -> Evaluation:
    """The patient's evaluation of their visit (the caller checked the visit is theirs)."""
    if visit.stage not in _EVALUABLE:
        raise Problem(409, "VISIT_NOT_FINISHED", "暂不能评价", "复诊完成后才能评价。", stage=visit.stage)
    closes = visit.updated_at + timedelta(days=settings.evaluation_window_days)
    if datetime.now(UTC) > closes:
        raise Problem(
            409,
            "EVALUATION_WINDOW_CLOSED",
            "评价期限已过",
            f"复诊结束 {settings.evaluation_window_days} 天内可以评价，该次复诊的评价期限已过。",
        )
    doctor = await session.get(Doctor, visit.doctor_id)
    assert doctor is not None  # a foreign key
    low = min(body.doctor_rating, body.department_rating, body.hospital_rating) <= LOW_RATING
    evaluation_id = f"ev-{secrets.token_hex(8)}"
    created = await session.scalar(
        insert(Evaluation)
        .values(
            id=evaluation_id,
            visit_id=visit.id,
            patient_id=visit.patient_id,
            doctor_id=visit.doctor_id,
            department_id=doctor.department_id,
            doctor_rating=body.doctor_rating,
            department_rating=body.department_rating,
            hospital_rating=body.hospital_rating,
            comment=body.comment,
            visibility="public" if settings.evaluation_public_by_default else "hidden",
            hidden_reason=None if settings.evaluation_public_by_default else "待审核后公开",
            handling="pending" if low else "none",
            created_at=datetime.now(UTC),
        )
        .on_conflict_do_nothing(index_elements=["visit_id"])
        .returning(col(Evaluation.id))
    )
    if created is None:
        raise Problem(409, "EVALUATION_EXISTS", "已评价", "该次复诊已经评价过。")
    await session.commit()
    row = await session.get(Evaluation, evaluation_id)
    assert row is not None
    if low:
        await temporal.start_workflow(
            EvaluationFollowUpWorkflow.run,
            EvaluationFollowUpInput(
                evaluation_id=row.id,
                visit_id=visit.id,
                doctor_name=doctor.name,
                doctor_rating=row.doctor_rating,
                department_rating=row.department_rating,
                hospital_rating=row.hospital_rating,
                comment=row.comment,
                remind_every_s=settings.evaluation_remind_every_s,
            ),
            id=evaluation_workflow_id(row.id),
            task_queue=settings.task_queue,
        )
    return row


async def of_visit(session: AsyncSession, visit_id: str) -> Evaluation:
    row = await session.scalar(select(Evaluation).where(col(Evaluation.visit_id) == visit_id))
    if row is None:
        raise not_found("评价")
    return row


async def mine(session: AsyncSession, actor: Actor) -> list[Evaluation]:
    """A patient's own evaluations, or those of a doctor's visits (hidden ones too), newest first."""
    query = own_rows(select(Evaluation), actor, col(Evaluation.patient_id), col(Evaluation.doctor_id))
    if query is None:
        return []
    return list(await session.scalars(query.order_by(col(Evaluation.created_at).desc())))


async def public_of_doctor(
    session: AsyncSession, doctor_id: str, limit: int, offset: int
) -> tuple[RatingSummary, int, list[Evaluation]]:
    """A doctor's public evaluations, newest first, and the summary of them."""
    public = (col(Evaluation.doctor_id) == doctor_id, col(Evaluation.visibility) == "public")
    count, doctor, department, hospital = (
        await session.execute(
            select(
                func.count(),
                func.round(func.avg(col(Evaluation.doctor_rating)), 1),
                func.round(func.avg(col(Evaluation.department_rating)), 1),
                func.round(func.avg(col(Evaluation.hospital_rating)), 1),
            ).where(*public)
        )
    ).one()
    stars = dict(
        (
            await session.execute(
                select(col(Evaluation.doctor_rating), func.count())
                .where(*public)
                .group_by(col(Evaluation.doctor_rating))
            )
        ).all()
    )
    summary = RatingSummary(
        count=count,
        doctor_rating=float(doctor) if doctor is not None else None,
        department_rating=float(department) if department is not None else None,
        hospital_rating=float(hospital) if hospital is not None else None,
        stars={star: stars.get(star, 0) for star in range(1, 6)},
    )
    rows = await session.scalars(
        select(Evaluation).where(*public).order_by(col(Evaluation.created_at).desc()).limit(limit).offset(offset)
    )
    return summary, count, list(rows)


async def get(session: AsyncSession, evaluation_id: str, *, for_update: bool = False) -> Evaluation:
    row = await session.get(Evaluation, evaluation_id, with_for_update=for_update)
    if row is None:
        raise not_found("评价")
    return row


async def set_visibility(session: AsyncSession, evaluation_id: str, body: VisibilityIn, actor: Actor) -> Evaluation:
    row = await get(session, evaluation_id, for_update=True)
    row.visibility = body.visibility
    if body.visibility == "hidden":
        row.hidden_reason, row.hidden_by, row.hidden_at = body.reason, actor.user_id, datetime.now(UTC)
    else:
        row.hidden_reason = row.hidden_by = row.hidden_at = None
    return row

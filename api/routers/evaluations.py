"""Evaluations of a concluded visit (服务评价管理, 8.6.7 a–d): the patient rates the doctor, the department and the
hospital once per visit; the patient sees their own and the doctor those of their visits; anyone sees a doctor's
public ones and their summary; admins handling feedback list them (pending follow-ups first if they wish), hide one
from public display with a recorded reason (none is ever deleted) and record how a low rating was followed up."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from sqlalchemy import func, select
from sqlmodel import col

from api.auth import Actor, ActorDep, PatientDep, require_roles
from api.deps import ContextDep, SessionDep, SettingsDep, TemporalDep
from api.errors import Problem, problem_responses
from api.idempotency import idempotent
from api.permissions import require_permission
from api.queries.listing import count_rows
from api.schemas.common import Limit, Offset, Page
from api.schemas.evaluations import (
    DoctorEvaluationsOut,
    EvaluationIn,
    EvaluationOut,
    HandlingIn,
    PublicEvaluationOut,
    VisibilityIn,
)
from api.services import evaluations
from api.services.access import not_found, visible_visit
from api.services.audit import audit
from api.services.temporal_calls import workflow_call
from models.common import Role
from models.evaluation import HandleEvaluation
from models.permissions import Permission
from models.tables import Doctor, Evaluation
from workflows.evaluation import EvaluationFollowUpWorkflow, evaluation_workflow_id

router = APIRouter(tags=["evaluations"])

HandlerDep = Annotated[Actor, Depends(require_permission(Permission.FEEDBACK_MANAGE))]
PatientOrDoctorDep = Annotated[Actor, Depends(require_roles(Role.PATIENT, Role.DOCTOR))]
VisitId = Annotated[str, Path(max_length=80)]
EvaluationId = Annotated[str, Path(max_length=40)]


@router.post(
    "/visits/{visit_id}/evaluation",
    status_code=201,
    response_model=EvaluationOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="评价本次复诊",
)
async def evaluate(
    visit_id: VisitId,
    body: EvaluationIn,
    request: Request,
    actor: PatientDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """The visit's patient, once, after the consult (409 `VISIT_NOT_FINISHED`) and within the window after it (409
    `EVALUATION_WINDOW_CLOSED`); 409 `EVALUATION_EXISTS` for a second one. A rating of two stars or fewer is followed
    up by the staff who handle feedback."""

    async def compute() -> tuple[int, dict]:
        visit = await visible_visit(session, actor, visit_id)
        row = await evaluations.create(session, settings, temporal, visit, body)
        return 201, EvaluationOut.model_validate(row).model_dump(mode="json")

    return await idempotent(request, actor, idempotency_key, compute)


@router.get(
    "/visits/{visit_id}/evaluation",
    response_model=EvaluationOut,
    responses=problem_responses(401, 404),
    summary="本次复诊的评价",
)
async def visit_evaluation(visit_id: VisitId, actor: ActorDep, session: SessionDep) -> EvaluationOut:
    """For the visit's patient, its doctor and admins; 404 when not evaluated (or not theirs)."""
    await visible_visit(session, actor, visit_id)
    return EvaluationOut.model_validate(await evaluations.of_visit(session, visit_id))


@router.get(
    "/me/evaluations",
    response_model=list[EvaluationOut],
    responses=problem_responses(401, 403),
    summary="我的评价",
)
async def my_evaluations(actor: PatientOrDoctorDep, session: SessionDep) -> list[EvaluationOut]:
    """A patient's own evaluations; for a doctor, every evaluation of their visits, also those not shown publicly."""
    return [EvaluationOut.model_validate(row) for row in await evaluations.mine(session, actor)]


@router.get(
    "/doctors/{doctor_id}/evaluations",
    response_model=DoctorEvaluationsOut,
    responses=problem_responses(404, 422),
    summary="医生的公开评价",
)
async def doctor_evaluations(
    doctor_id: Annotated[str, Path(max_length=40)], session: SessionDep, limit: Limit = 20, offset: Offset = 0
) -> DoctorEvaluationsOut:
    """Public: the doctor's public evaluations (never who wrote them), newest first, and their average ratings."""
    doctor = await session.get(Doctor, doctor_id)
    if doctor is None or not doctor.active:
        raise not_found("医生")
    summary, total, rows = await evaluations.public_of_doctor(session, doctor_id, limit, offset)
    return DoctorEvaluationsOut(
        doctor_id=doctor_id,
        summary=summary,
        items=[PublicEvaluationOut.model_validate(row) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/admin/evaluations",
    response_model=Page[EvaluationOut],
    responses=problem_responses(401, 403, 422),
    summary="服务评价管理：评价列表",
)
async def list_evaluations(
    actor: HandlerDep,
    session: SessionDep,
    handling: Literal["none", "pending", "handled"] | None = None,
    visibility: Literal["public", "hidden"] | None = None,
    doctor_id: Annotated[str | None, Query(max_length=40)] = None,
    max_rating: Annotated[int | None, Query(ge=1, le=5, description="任一项满意度不高于此星级")] = None,
    order: Annotated[Literal["newest", "oldest"], Query(description="按评价时间排序")] = "newest",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[EvaluationOut]:
    """`handling=pending&order=oldest` is the follow-up queue, longest waiting first."""
    query = select(Evaluation)
    for column, value in (
        (Evaluation.handling, handling),
        (Evaluation.visibility, visibility),
        (Evaluation.doctor_id, doctor_id),
    ):
        if value is not None:
            query = query.where(col(column) == value)
    if max_rating is not None:
        lowest = func.least(
            col(Evaluation.doctor_rating), col(Evaluation.department_rating), col(Evaluation.hospital_rating)
        )
        query = query.where(lowest <= max_rating)
    total = await count_rows(session, query)
    created = col(Evaluation.created_at)
    ordered = query.order_by(created.asc() if order == "oldest" else created.desc(), col(Evaluation.id))
    rows = await session.scalars(ordered.limit(limit).offset(offset))
    return Page(items=[EvaluationOut.model_validate(row) for row in rows], total=total, limit=limit, offset=offset)


@router.put(
    "/admin/evaluations/{evaluation_id}/visibility",
    response_model=EvaluationOut,
    responses=problem_responses(401, 403, 404, 422),
    summary="设置评价是否公开显示",
)
async def set_visibility(
    evaluation_id: EvaluationId, body: VisibilityIn, request: Request, actor: HandlerDep, session: SessionDep
) -> EvaluationOut:
    """Hide one from public display, with the reason (an evaluation whose truth nothing disproves stays public;
    none is ever deleted), or show it again. Audited."""
    row = await evaluations.set_visibility(session, evaluation_id, body, actor)
    audit(
        session,
        actor,
        f"evaluation.{'hidden' if body.visibility == 'hidden' else 'published'}",
        "evaluation",
        evaluation_id,
        detail=body.model_dump(exclude_none=True),
        request=request,
    )
    await session.commit()
    return EvaluationOut.model_validate(row)


@router.post(
    "/admin/evaluations/{evaluation_id}/handling",
    response_model=EvaluationOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="记录差评处理情况",
)
async def handle_evaluation(
    evaluation_id: EvaluationId,
    body: HandlingIn,
    request: Request,
    actor: HandlerDep,
    session: SessionDep,
    ctx: ContextDep,
) -> EvaluationOut:
    """Ends the low rating's follow-up (its reminders stop). 409 `NOTHING_TO_HANDLE` for an evaluation that needs
    none, 409 `EVALUATION_HANDLED` once handled."""
    row = await evaluations.get(session, evaluation_id)
    if row.handling == "none":
        raise Problem(409, "NOTHING_TO_HANDLE", "无需处理", "只有差评需要跟进处理。")
    if row.handling == "handled":
        raise Problem(409, "EVALUATION_HANDLED", "已处理", "该评价已处理。", handled_by=row.handled_by)
    handle = ctx.temporal.get_workflow_handle(evaluation_workflow_id(row.id))
    await workflow_call(
        handle.execute_update(
            EvaluationFollowUpWorkflow.handle, HandleEvaluation(handled_by=actor.user_id, note=body.note)
        ),
        missing="评价的跟进流程不存在",
    )
    audit(session, actor, "evaluation.handled", "evaluation", row.id, detail={"note": body.note}, request=request)
    await session.commit()
    await session.refresh(row)
    return EvaluationOut.model_validate(row)

"""Visits (挂号、接诊、复诊) once booked (see `api.routers.bookings`): everything is a message to the visit's workflow.
Lists come from the read model the workflow keeps."""

from __future__ import annotations

import secrets
from datetime import datetime

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlmodel import col

from api.auth import ActorDep, DoctorDep, PatientDep
from api.deps import ContextDep, SessionDep, TemporalDep
from api.errors import Problem, problem_responses
from api.idempotency import idempotent
from api.permissions import PrescriberDep
from api.queries.listing import own_rows
from api.services.access import booked_visit, visible_visit
from api.services.audit import audit_read
from api.services.bookings import start_from_hold
from api.services.temporal_calls import workflow_call
from models.prescription import PrescriptionDraft
from models.tables import Visit
from models.visit import (
    AbortVisit,
    AcceptVisit,
    BookingRequest,
    CancelVisit,
    CheckIn,
    FinishVisit,
    LeaveChoice,
    Prescribe,
    ResolveLeave,
    VisitStage,
    VisitState,
)
from workflows.visit import VisitWorkflow, visit_workflow_id

router = APIRouter(tags=["visits"])


class VisitSummary(BaseModel):
    visit_id: str
    patient_id: str
    doctor_id: str
    slot_id: str
    disease_code: str
    stage: VisitStage
    fee_fen: int
    starts_at: datetime
    bill_id: str | None
    queue_no: int | None
    abort_reason: str | None


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500, examples=["临时有事，无法按时就诊"])


class AbortIn(ReasonIn):
    advice: str = Field(default="", max_length=2000, examples=["建议尽快到医院门诊面诊。"])


class LeaveChoiceIn(BaseModel):
    choice: LeaveChoice = Field(description="refund：全额退款；rebook：改约到 slot_id")
    slot_id: str | None = Field(default=None, min_length=1, max_length=60, description="改约的新号源（同病种）")

    @model_validator(mode="after")
    def _rebook_needs_a_slot(self) -> LeaveChoiceIn:
        if self.choice is LeaveChoice.REBOOK and not self.slot_id:
            raise ValueError("改约请选择新的号源")
        return self


class PrescribeIn(PrescriptionDraft):
    pass


class PrescribeOut(BaseModel):
    prescription_id: str


@router.get(
    "/visits", response_model=list[VisitSummary], responses=problem_responses(401, 403), summary="挂号/复诊列表"
)
async def list_visits(
    actor: ActorDep,
    session: SessionDep,
    stage: VisitStage | None = Query(default=None, description="按状态筛选；医生的待接诊列表用 waiting_doctor"),
    limit: int = Query(default=50, ge=1, le=200),
    offset: int = Query(default=0, ge=0, le=1_000_000),
) -> list[VisitSummary]:
    """Patients see their own visits, doctors the visits assigned to them (待接诊/接诊中/已完成), admins all."""
    query = own_rows(
        select(Visit).order_by(col(Visit.starts_at).desc()).limit(limit).offset(offset),
        actor,
        col(Visit.patient_id),
        col(Visit.doctor_id),
    )
    if query is None:
        return []
    if stage is not None:
        query = query.where(col(Visit.stage) == stage.value)
    return [_summary(row) for row in (await session.execute(query)).scalars()]


def _summary(row: Visit) -> VisitSummary:
    return VisitSummary(
        visit_id=row.id,
        patient_id=row.patient_id,
        doctor_id=row.doctor_id,
        slot_id=row.slot_id,
        disease_code=row.disease_code,
        stage=VisitStage(row.stage),
        fee_fen=row.fee_fen,
        starts_at=row.starts_at,
        bill_id=row.bill_id,
        queue_no=row.queue_no,
        abort_reason=row.abort_reason,
    )


@router.get("/visits/{visit_id}", response_model=VisitState, responses=problem_responses(401, 404), summary="挂号详情")
async def get_visit(
    visit_id: str, request: Request, actor: ActorDep, session: SessionDep, temporal: TemporalDep
) -> VisitState:
    visit = await visible_visit(session, actor, visit_id)
    await audit_read(session, actor, "visit", visit_id, visit.patient_id, request)
    handle = temporal.get_workflow_handle(visit_workflow_id(visit_id))
    return await workflow_call(handle.query(VisitWorkflow.state))


@router.get(
    "/visits/{visit_id}/payment",
    response_model=VisitState,
    responses=problem_responses(401, 404),
    summary="挂号支付信息",
)
async def visit_payment(visit_id: str, actor: PatientDep, ctx: ContextDep) -> VisitState:
    """The visit with `pay_url` and `pay_deadline` of its registration bill, waiting until the bill is open (normally
    well under a second after booking). A visit no longer awaiting payment answers with its state as it is."""
    await booked_visit(ctx, actor, visit_id)
    handle = ctx.temporal.get_workflow_handle(visit_workflow_id(visit_id))
    try:
        state = await workflow_call(handle.query(VisitWorkflow.state))
    except Problem as problem:
        # The booking was answered before its flow started, and the start never completed: make it now.
        if problem.status != 404 or not await start_from_hold(ctx, visit_id):
            raise
        state = await workflow_call(handle.query(VisitWorkflow.state))
    if state.stage is not VisitStage.AWAITING_PAYMENT or state.pay_url is not None:
        return state
    return await workflow_call(handle.execute_update(VisitWorkflow.book, BookingRequest(patient_id=actor.ref or "")))


@router.post(
    "/visits/{visit_id}/cancel",
    response_model=VisitState,
    responses=problem_responses(401, 404, 409),
    summary="取消预约",
)
async def cancel_visit(
    visit_id: str, body: ReasonIn, actor: PatientDep, session: SessionDep, temporal: TemporalDep
) -> VisitState:
    """Before paying the bill closes at once; after paying and before the doctor accepts, the fee is refunded."""
    await visible_visit(session, actor, visit_id)
    handle = temporal.get_workflow_handle(visit_workflow_id(visit_id))
    return await workflow_call(
        handle.execute_update(VisitWorkflow.cancel, CancelVisit(patient_id=actor.ref or "", reason=body.reason))
    )


@router.post(
    "/visits/{visit_id}/check-in",
    response_model=VisitState,
    responses=problem_responses(401, 403, 404, 409),
    summary="患者报到",
)
async def check_in(visit_id: str, actor: PatientDep, session: SessionDep, temporal: TemporalDep) -> VisitState:
    """Open from 30 minutes before the slot until it ends (409 `CHECK_IN_NOT_OPEN` / `CHECK_IN_CLOSED`).

    A paid visit neither checked in nor accepted by the end of its slot closes as `no_show` (爽约, 8.6.8) and keeps the
    registration fee; a checked-in patient whose doctor does not accept in time is refunded.
    """
    await visible_visit(session, actor, visit_id)
    handle = temporal.get_workflow_handle(visit_workflow_id(visit_id))
    return await workflow_call(handle.execute_update(VisitWorkflow.check_in, CheckIn(patient_id=actor.ref or "")))


@router.post(
    "/visits/{visit_id}/leave-choice",
    response_model=VisitState,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
    summary="停诊后改约或退款",
)
async def resolve_leave(
    visit_id: str,
    body: LeaveChoiceIn,
    request: Request,
    actor: PatientDep,
    session: SessionDep,
    temporal: TemporalDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """Answer the pending `leave_offer` of `GET /visits/{id}` before its deadline: a full refund, or a move to a free
    slot of the same disease whose fee is not higher (a lower fee refunds the difference).

    409 `REBOOK_FEE_HIGHER`, `SLOT_TAKEN`, `SLOT_CLOSED`, `SLOT_RESERVED`, `REBOOK_DISEASE_MISMATCH`,
    `NO_LEAVE_OFFER`, `LEAVE_OFFER_EXPIRED`; 404 when the slot does not exist.
    """
    await visible_visit(session, actor, visit_id)
    handle = temporal.get_workflow_handle(visit_workflow_id(visit_id))
    choice = ResolveLeave(patient_id=actor.ref or "", choice=body.choice, slot_id=body.slot_id)

    async def compute() -> tuple[int, dict]:
        state = await workflow_call(handle.execute_update(VisitWorkflow.resolve_leave, choice))
        return 200, state.model_dump(mode="json")

    return await idempotent(request, actor, idempotency_key, compute)


@router.post(
    "/visits/{visit_id}/accept", response_model=VisitState, responses=problem_responses(401, 404, 409), summary="接诊"
)
async def accept_visit(visit_id: str, actor: DoctorDep, session: SessionDep, temporal: TemporalDep) -> VisitState:
    await visible_visit(session, actor, visit_id)
    handle = temporal.get_workflow_handle(visit_workflow_id(visit_id))
    return await workflow_call(handle.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id=actor.ref or "")))


@router.post(
    "/visits/{visit_id}/abort",
    response_model=VisitState,
    responses=problem_responses(401, 404, 409, 422),
    summary="中止复诊",
)
async def abort_visit(
    visit_id: str, body: AbortIn, actor: DoctorDep, session: SessionDep, temporal: TemporalDep
) -> VisitState:
    """The doctor finds online care unsuitable: the visit ends with the reason and advice, and the fee is refunded."""
    await visible_visit(session, actor, visit_id)
    handle = temporal.get_workflow_handle(visit_workflow_id(visit_id))
    return await workflow_call(
        handle.execute_update(
            VisitWorkflow.abort, AbortVisit(doctor_id=actor.ref or "", reason=body.reason, advice=body.advice)
        )
    )


@router.post(
    "/visits/{visit_id}/prescriptions",
    status_code=201,
    response_model=PrescribeOut,
    responses=problem_responses(401, 404, 409, 422),
    summary="开具处方",
)
async def prescribe(
    visit_id: str,
    body: PrescribeIn,
    request: Request,
    actor: PrescriberDep,
    session: SessionDep,
    temporal: TemporalDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """Starts the prescription's own flow: the rule pre-review runs at once (see `GET /prescriptions/{id}`)."""
    await visible_visit(session, actor, visit_id)
    handle = temporal.get_workflow_handle(visit_workflow_id(visit_id))

    async def compute() -> tuple[int, dict]:
        prescription_id = f"{visit_id}-rx{secrets.token_hex(3)}"
        draft = PrescriptionDraft.model_validate(body.model_dump())
        created = await workflow_call(
            handle.execute_update(
                VisitWorkflow.prescribe,
                Prescribe(doctor_id=actor.ref or "", prescription_id=prescription_id, draft=draft),
            )
        )
        return 201, {"prescription_id": created}

    return await idempotent(request, actor, idempotency_key, compute)


@router.post(
    "/visits/{visit_id}/finish",
    response_model=VisitState,
    responses=problem_responses(401, 404, 409),
    summary="结束复诊",
)
async def finish_visit(visit_id: str, actor: DoctorDep, session: SessionDep, temporal: TemporalDep) -> VisitState:
    await visible_visit(session, actor, visit_id)
    handle = temporal.get_workflow_handle(visit_workflow_id(visit_id))
    return await workflow_call(handle.execute_update(VisitWorkflow.finish, FinishVisit(doctor_id=actor.ref or "")))

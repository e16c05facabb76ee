"""Exams (检查/检验, 8.4.1–8.4.2): the catalogue and its days, the doctor's order in a consult, and the order's life:
the patient pays, books a day for the exams that need one, and may cancel an exam not yet performed for a refund
along the original path; the hospital marks exams performed or cancels them. Every step is an update to the order's
ExamOrder flow (ordering: to the visit's flow); lists come from the read model the flows keep."""

from __future__ import annotations

import secrets
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import Client

from api.auth import Actor, ActorDep, AdminDep, DoctorDep, PatientDep, require_roles
from api.deps import SessionDep, SettingsDep, TemporalDep
from api.errors import problem_responses
from api.hospital_time import hospital_today
from api.idempotency import idempotent
from api.schemas.exams import (
    BookExamIn,
    CancelExamsIn,
    ExamCatalogueOut,
    ExamDayOut,
    ExamOrderSummary,
    HospitalCancelExamsIn,
    OrderExamsIn,
)
from api.services import exams
from api.services.access import visible_visit
from api.services.audit import audit, audit_read
from api.services.temporal_calls import workflow_call
from models.common import Role
from models.exam import BookExam, CancelExams, ExamOrderStage, ExamOrderState, OrderExams, PayExams, PerformExam
from models.tables import ExamCatalogueEntry, ExamOrder
from workflows.exam import ExamOrderWorkflow, exam_workflow_id
from workflows.visit import VisitWorkflow, visit_workflow_id

router = APIRouter(tags=["exams"])

# Who records an exam as performed: the hospital's staff (administrators) or a doctor of the order's visit.
PerformerDep = Annotated[Actor, Depends(require_roles(Role.ADMIN, Role.DOCTOR))]


@router.get(
    "/exam-catalogue", response_model=list[ExamCatalogueOut], responses=problem_responses(401), summary="检查目录"
)
async def exam_catalogue(actor: ActorDep, session: SessionDep) -> list[ExamCatalogueOut]:
    rows = await session.execute(
        select(ExamCatalogueEntry).where(col(ExamCatalogueEntry.active)).order_by(col(ExamCatalogueEntry.code))
    )
    return [ExamCatalogueOut.model_validate(row, from_attributes=True) for row in rows.scalars()]


@router.get(
    "/exam-catalogue/{exam_code}/availability",
    response_model=list[ExamDayOut],
    responses=problem_responses(401, 404, 409, 422),
    summary="检查可预约日期",
)
async def exam_availability(
    exam_code: str,
    actor: ActorDep,
    session: SessionDep,
    start: date | None = Query(default=None, description="起始日期（北京时间），默认今天"),
    days: int = Query(default=14, ge=1, le=exams.AVAILABILITY_MAX_DAYS),
) -> list[ExamDayOut]:
    """Places left per day for an exam that needs booking (409 `EXAM_NO_BOOKING` for one that does not)."""
    entry = await exams.catalogue_entry(session, exam_code)
    today = hospital_today()
    return await exams.availability(session, entry, start or today, days, today)


@router.post(
    "/visits/{visit_id}/exams",
    status_code=201,
    response_model=ExamOrderState,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="开具检查",
)
async def order_exams(
    visit_id: str,
    body: OrderExamsIn,
    request: Request,
    actor: DoctorDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """The visit's doctor orders exams from the catalogue during the consult; the order is paid by the patient on its
    own bill (kind `exam`). 422 `EXAM_UNKNOWN` / `EXAM_DUPLICATE` for codes not in the catalogue or listed twice;
    409 `VISIT_NOT_IN_CONSULT` outside the consult; 403 for a doctor of the visit who is not its attending doctor."""
    visit = await visible_visit(session, actor, visit_id)
    lines = await exams.priced_lines(session, body.exam_codes)

    async def compute() -> tuple[int, dict[str, Any]]:
        order = OrderExams(
            doctor_id=actor.ref or "",
            order_id=f"{visit_id}-ex{secrets.token_hex(3)}",
            lines=lines,
            note=body.note,
            windows=exams.windows(settings),
        )
        handle = temporal.get_workflow_handle(visit_workflow_id(visit_id))
        state = await workflow_call(handle.execute_update(VisitWorkflow.order_exams, order))
        audit(session, actor, "exam.ordered", "exam_order", state.order_id, detail={
            "patient_id": visit.patient_id, "codes": body.exam_codes, "total_fen": state.total_fen,
        }, request=request)  # fmt: skip
        await session.commit()
        return 201, state.model_dump(mode="json")

    return await idempotent(request, actor, idempotency_key, compute)


@router.get("/exams", response_model=list[ExamOrderSummary], responses=problem_responses(401), summary="检查单列表")
async def list_exam_orders(
    actor: ActorDep,
    session: SessionDep,
    stage: ExamOrderStage | None = Query(default=None),
    limit: int = Query(default=50, ge=1, le=200),
    offset: int = Query(default=0, ge=0, le=1_000_000),
) -> list[ExamOrderSummary]:
    """Patients see their own orders, doctors the ones they ordered, administrators all."""
    return await exams.list_orders(session, actor, stage, limit, offset)


@router.get(
    "/exams/{order_id}", response_model=ExamOrderState, responses=problem_responses(401, 404), summary="检查单详情"
)
async def get_exam_order(
    order_id: str, request: Request, actor: ActorDep, session: SessionDep, temporal: TemporalDep
) -> ExamOrderState:
    order = await exams.visible_exam_order(session, actor, order_id)
    await audit_read(session, actor, "exam_order", order_id, order.patient_id, request)
    return await workflow_call(_flow(temporal, order_id).query(ExamOrderWorkflow.state))


@router.post(
    "/exams/{order_id}/payment",
    response_model=ExamOrderState,
    responses=problem_responses(401, 403, 404, 409),
    summary="检查缴费",
)
async def pay_exams(
    order_id: str,
    request: Request,
    actor: PatientDep,
    session: SessionDep,
    temporal: TemporalDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """Opens the order's bill (once; asking again answers with the same one): pay at `pay_url` before
    `pay_deadline`. 409 `EXAM_ALREADY_PAID`, `EXAM_ORDER_CLOSED`."""
    order = await exams.visible_exam_order(session, actor, order_id)

    async def compute() -> tuple[int, dict[str, Any]]:
        await exams.refuse_if_ended(session, order)
        update = _flow(temporal, order_id).execute_update(ExamOrderWorkflow.pay, PayExams(patient_id=actor.ref or ""))
        return 200, (await workflow_call(update)).model_dump(mode="json")

    return await idempotent(request, actor, idempotency_key, compute)


@router.post(
    "/exams/{order_id}/items/{item_no}/booking",
    response_model=ExamOrderState,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="预约检查日期",
)
async def book_exam(
    order_id: str, item_no: int, body: BookExamIn, actor: PatientDep, session: SessionDep, temporal: TemporalDep
) -> ExamOrderState:
    """Book (or move) the day of a paid exam that needs one. PostgreSQL hands out the day's places one by one: 409
    `EXAM_DAY_FULL` when none is left; also `EXAM_NO_BOOKING`, `EXAM_DAY_OUT_OF_RANGE`, `EXAM_NOT_PAID`,
    `EXAM_PERFORMED`, `EXAM_CANCELLED`."""
    await exams.refuse_if_ended(session, await exams.visible_exam_order(session, actor, order_id), [item_no])
    booking = BookExam(patient_id=actor.ref or "", item_no=item_no, day=body.day)
    return await workflow_call(_flow(temporal, order_id).execute_update(ExamOrderWorkflow.book, booking))


@router.post(
    "/exams/{order_id}/cancel",
    response_model=ExamOrderState,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="取消检查（退费）",
)
async def cancel_exams(
    order_id: str,
    body: CancelExamsIn,
    request: Request,
    actor: PatientDep,
    session: SessionDep,
    temporal: TemporalDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """Before payment the whole order closes. Once paid, the named exams (all not yet performed without names) are
    cancelled and their price refunded along the original path, answering when the refund is done. 409
    `EXAM_PERFORMED` for an exam already performed (no refund), `EXAM_CANCELLED`, `REFUND_FAILED`."""
    order = await exams.visible_exam_order(session, actor, order_id)
    cancel = CancelExams(requested_by=actor.ref or "", item_nos=body.item_nos, reason=body.reason)
    return await _cancel(request, actor, idempotency_key, session, temporal, order, cancel)


@router.post(
    "/exams/{order_id}/hospital-cancel",
    response_model=ExamOrderState,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="医院取消检查（授权退费）",
)
async def hospital_cancel_exams(
    order_id: str,
    body: HospitalCancelExamsIn,
    request: Request,
    actor: AdminDep,
    session: SessionDep,
    temporal: TemporalDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """The hospital cancels exams not yet performed (equipment, schedule, clinical reasons): an administrator
    authorizes the refund, recorded with the reason and audited; the patient is told. Before payment the order
    closes."""
    order = await exams.visible_exam_order(session, actor, order_id)
    cancel = CancelExams(
        requested_by=actor.user_id,
        hospital=True,
        item_nos=body.item_nos,
        reason=body.reason,
        reason_code=body.reason_code,
    )
    return await _cancel(request, actor, idempotency_key, session, temporal, order, cancel)


@router.post(
    "/exams/{order_id}/items/{item_no}/performed",
    response_model=ExamOrderState,
    responses=problem_responses(401, 403, 404, 409),
    summary="登记检查已执行",
)
async def exam_performed(
    order_id: str, item_no: int, request: Request, actor: PerformerDep, session: SessionDep, temporal: TemporalDep
) -> ExamOrderState:
    """The exam department (an administrator's account) or a doctor of the visit records the exam as performed;
    from then on it is not refunded. 409 `EXAM_NOT_BOOKED` for an exam that needs a day and has none."""
    order = await exams.visible_exam_order(session, actor, order_id)
    await exams.refuse_if_ended(session, order, [item_no])
    performed = PerformExam(performed_by=actor.user_id, item_no=item_no)
    state = await workflow_call(_flow(temporal, order_id).execute_update(ExamOrderWorkflow.perform, performed))
    audit(session, actor, "exam.performed", "exam_order", order_id,
          detail={"patient_id": order.patient_id, "item_no": item_no}, request=request)  # fmt: skip
    await session.commit()
    return state


async def _cancel(
    request: Request,
    actor: Actor,
    key: str | None,
    session: AsyncSession,
    temporal: Client,
    order: ExamOrder,
    cancel: CancelExams,
) -> JSONResponse:
    """A cancel, the patient's or the hospital's, answered once per Idempotency-Key; the hospital's is audited."""

    async def compute() -> tuple[int, dict[str, Any]]:
        await exams.refuse_if_ended(session, order, cancel.item_nos)
        state = await workflow_call(_flow(temporal, order.id).execute_update(ExamOrderWorkflow.cancel, cancel))
        if cancel.hospital:
            audit(session, actor, "exam.hospital_cancelled", "exam_order", order.id, reason=cancel.reason, detail={
                "patient_id": order.patient_id, "reason_code": cancel.reason_code, "item_nos": cancel.item_nos,
            }, request=request)  # fmt: skip
            await session.commit()
        return 200, state.model_dump(mode="json")

    return await idempotent(request, actor, key, compute)


def _flow(temporal: Client, order_id: str):  # type: ignore[no-untyped-def]
    return temporal.get_workflow_handle(exam_workflow_id(order_id))

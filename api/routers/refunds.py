"""Refunds (8.4.2): administrators authorize registration refunds and settle special refunds after their negotiation;
patients ask for a prescription refund before the medicine leaves the pharmacy, and the hospital decides. Each refund
is a Refund workflow; the listing reads the refunds table."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlmodel import col

from activities.refund_requests import dispatch_status
from api.auth import Actor, ActorDep, AdminDep, PatientDep, require_roles
from api.deps import ContextDep, SessionDep, TemporalDep
from api.errors import Problem, problem_responses
from api.schemas.money import (
    AuthorizedRefundIn,
    ConclusionIn,
    NegotiationIn,
    RefundOut,
    RefundStarted,
    RxRefundDecisionIn,
    RxRefundRequestIn,
    SpecialRefundIn,
)
from api.services import refunds
from api.services.access import visible_bill, visible_prescription
from api.services.audit import audit, audit_read
from api.services.temporal_calls import workflow_call
from models.billing import ConcludeNegotiation, NegotiationEntry, RefundKind, RefundResult
from models.common import Role
from models.prescription import RxStage
from models.refund_request import RxRefundDecision, RxRefundRequest, RxRefundState
from models.tables import Refund
from workflows.prescription import PrescriptionWorkflow, prescription_workflow_id
from workflows.refund import RefundWorkflow

router = APIRouter(tags=["refunds"])

HospitalDep = Annotated[Actor, Depends(require_roles(Role.ADMIN, Role.PHARMACIST))]


@router.get(
    "/bills/{bill_id}/refunds",
    response_model=list[RefundOut],
    responses=problem_responses(401, 404),
    summary="退款记录",
)
async def list_refunds(bill_id: str, request: Request, actor: ActorDep, session: SessionDep) -> list[RefundOut]:
    bill = await visible_bill(session, actor, bill_id)
    rows = await session.execute(select(Refund).where(col(Refund.bill_id) == bill_id).order_by(col(Refund.created_at)))
    answer = [await refunds.refund_out(session, row) for row in rows.scalars()]
    await audit_read(session, actor, "bill", bill_id, bill.patient_id, request)
    return answer


@router.get("/refunds/{refund_id}", response_model=RefundOut, responses=problem_responses(401, 404), summary="退款详情")
async def get_refund(refund_id: str, request: Request, actor: ActorDep, session: SessionDep) -> RefundOut:
    refund, patient_id = await _visible_refund(session, actor, refund_id)
    answer = await refunds.refund_out(session, refund)
    await audit_read(session, actor, "bill", refund.bill_id, patient_id, request)
    return answer


@router.post(
    "/bills/{bill_id}/refunds",
    status_code=202,
    response_model=RefundStarted,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="授权退款（挂号费）",
)
async def authorize_refund(
    bill_id: str, body: AuthorizedRefundIn, request: Request, actor: AdminDep, session: SessionDep, ctx: ContextDep
) -> RefundStarted:
    """An administrator refunds a registration fee after its visit ended, because the patient could not attend
    (`patient_unable_to_attend`) or the hospital changed the schedule (`schedule_changed`). The reason is recorded
    and audited; the money goes back along the original paths (医保 part through the 医保 platform). 409
    `VISIT_IN_PROGRESS` while the visit's own flow still runs, `REFUND_EXCEEDS_PAID` above what is left."""
    bill = await visible_bill(session, actor, bill_id)
    return await refunds.start_authorized_refund(
        ctx.temporal, ctx.settings.task_queue, session, actor, bill, body, request
    )


@router.post(
    "/bills/{bill_id}/special-refunds",
    status_code=202,
    response_model=RefundStarted,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="特殊退款（药品已出库）",
)
async def open_special_refund(
    bill_id: str, body: SpecialRefundIn, request: Request, actor: AdminDep, session: SessionDep, ctx: ContextDep
) -> RefundStarted:
    """Open a special refund of a prescription whose medicine has left the pharmacy. Record each party's answer
    (`/refunds/{refund_id}/negotiation`), then conclude it; the agreed sum is refunded. 409 `RX_NOT_DISPATCHED`
    before the medicine left (the patient asks for an ordinary refund then)."""
    bill = await visible_bill(session, actor, bill_id)
    return await refunds.start_special_refund(
        ctx.temporal, ctx.settings.task_queue, session, actor, bill, body, request
    )


@router.post(
    "/refunds/{refund_id}/negotiation",
    response_model=RefundResult,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="记录特殊退款协商意见",
)
async def record_negotiation(
    refund_id: str, body: NegotiationIn, request: Request, actor: AdminDep, session: SessionDep, temporal: TemporalDep
) -> RefundResult:
    """One party's answer: the hospital, the supplier (the dispensing pharmacy) or the courier, whether it agreed and
    what it bears (fen). Every answer is kept; a party's latest one counts."""
    refund = await _special(session, actor, refund_id)
    entry = NegotiationEntry(**body.model_dump(), recorded_by=actor.user_id)
    result = await workflow_call(
        _refund_flow(temporal, refund_id).execute_update(RefundWorkflow.record_negotiation, entry)
    )
    audit(session, actor, "refund.negotiation", "refund", refund_id, reason=body.note or None,
          detail={"bill_id": refund.bill_id, "party": body.party.value, "agreed": body.agreed,
                  "amount_fen": body.amount_fen}, request=request)  # fmt: skip
    await session.commit()
    return result


@router.post(
    "/refunds/{refund_id}/conclusion",
    response_model=RefundResult,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="办结特殊退款",
)
async def conclude_negotiation(
    refund_id: str, body: ConclusionIn, request: Request, actor: AdminDep, session: SessionDep, temporal: TemporalDep
) -> RefundResult:
    """Refund the sum the agreeing parties bear (all three parties' answers recorded, the hospital's among them), or
    refuse with a reason. 409 `NEGOTIATION_INCOMPLETE` while an answer is missing."""
    refund = await _special(session, actor, refund_id)
    conclusion = ConcludeNegotiation(approve=body.approve, note=body.note, concluded_by=actor.user_id)
    result = await workflow_call(
        _refund_flow(temporal, refund_id).execute_update(RefundWorkflow.conclude_negotiation, conclusion)
    )
    audit(session, actor, "refund.conclude", "refund", refund_id, reason=body.note or None,
          detail={"bill_id": refund.bill_id, "approve": body.approve, "amount_fen": result.amount_fen},
          request=request)  # fmt: skip
    await session.commit()
    return result


@router.post(
    "/prescriptions/{prescription_id}/refund-request",
    response_model=RxRefundState,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="申请处方退款（药品出库前）",
)
async def request_rx_refund(
    prescription_id: str, body: RxRefundRequestIn, actor: PatientDep, session: SessionDep, temporal: TemporalDep
) -> RxRefundState:
    """Before the medicine leaves the pharmacy the patient may ask for the prescription's money back; the hospital
    approves or refuses. 409 `RX_DISPATCHED` once it has left."""
    rx = await visible_prescription(session, actor, prescription_id)
    if (await dispatch_status(session, prescription_id)).left:
        raise Problem(409, "RX_DISPATCHED", "药品已出库", "药品已出库，不能申请退款；如有问题请联系医院办理特殊退款")
    if rx.stage != RxStage.FULFILLING.value:
        raise Problem(409, "RX_NOT_REFUNDABLE", "处方当前不能申请退款", "仅已支付、药品尚未出库的处方可申请退款")
    ask = RxRefundRequest(patient_id=actor.ref or "", reason=body.reason)
    return await workflow_call(_rx(temporal, prescription_id).execute_update(PrescriptionWorkflow.request_refund, ask))


@router.get(
    "/prescriptions/{prescription_id}/refund-request",
    response_model=RxRefundState | None,
    responses=problem_responses(401, 404),
    summary="处方退款申请",
)
async def get_rx_refund(
    prescription_id: str, actor: ActorDep, session: SessionDep, temporal: TemporalDep
) -> RxRefundState | None:
    await visible_prescription(session, actor, prescription_id)
    return await workflow_call(_rx(temporal, prescription_id).query(PrescriptionWorkflow.refund_request))


@router.post(
    "/prescriptions/{prescription_id}/refund-request/decision",
    response_model=RxRefundState,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="审核处方退款申请",
)
async def decide_rx_refund(
    prescription_id: str,
    body: RxRefundDecisionIn,
    request: Request,
    actor: HospitalDep,
    session: SessionDep,
    temporal: TemporalDep,
) -> RxRefundState:
    """A pharmacist or an administrator approves (the pharmacy order is withdrawn and the whole bill refunded along
    its original paths) or refuses with a reason. `too_late` when the medicine left before the approval."""
    rx = await visible_prescription(session, actor, prescription_id)
    decision = RxRefundDecision(decided_by=actor.user_id, approve=body.approve, note=body.note)
    state = await workflow_call(
        _rx(temporal, prescription_id).execute_update(PrescriptionWorkflow.decide_refund, decision)
    )
    audit(session, actor, "refund.request_decided", "prescription", prescription_id, reason=body.note or None,
          detail={"patient_id": rx.patient_id, "approve": body.approve, "status": state.status.value},
          request=request)  # fmt: skip
    await session.commit()
    return state


async def _visible_refund(session: SessionDep, actor: Actor, refund_id: str) -> tuple[Refund, str]:
    """The refund and whose it is, for those who may see its bill (404 for anyone else)."""
    refund = await session.get(Refund, refund_id)
    if refund is None:
        raise Problem(404, "NOT_FOUND", "未找到", "退款记录不存在")
    bill = await visible_bill(session, actor, refund.bill_id)
    return refund, bill.patient_id


async def _special(session: SessionDep, actor: Actor, refund_id: str) -> Refund:
    refund, _ = await _visible_refund(session, actor, refund_id)
    if refund.kind != RefundKind.SPECIAL.value:
        raise Problem(409, "NOT_A_SPECIAL_REFUND", "不是特殊退款", "只有特殊退款需要协商")
    return refund


def _refund_flow(temporal: TemporalDep, refund_id: str):  # type: ignore[no-untyped-def]
    return temporal.get_workflow_handle(refunds.special_refund_workflow_id(refund_id))


def _rx(temporal: TemporalDep, prescription_id: str):  # type: ignore[no-untyped-def]
    return temporal.get_workflow_handle(prescription_workflow_id(prescription_id))

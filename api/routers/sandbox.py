"""Simulators of the sandbox payment channel, 医保 platform and courier, for development and tests only.

Mounted only while those sandbox adapters are configured. The cashier stands in for the channel's pay page, the 医保
authorization for the platform's authorization page (医保移动支付), the courier console for the courier's scanners;
each produces the same signed callbacks a real peer sends, delivered through the same verification path as
`/callbacks`.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from activities.adapters.courier.sandbox import SandboxCourier
from activities.adapters.errors import AdapterRefusal
from activities.adapters.insurance.sandbox import SandboxInsurance
from activities.adapters.payment.sandbox import SandboxPayment
from activities.visits import load_identity
from api.auth import AdminDep, PatientDep
from api.deps import ContextDep, SessionDep
from api.errors import Problem, problem_responses
from api.services.access import visible_bill
from api.services.callbacks import deliver_courier_event, deliver_insurance_authorization, deliver_payment_notice
from models.billing import PaymentNotice
from models.fulfilment import CourierEvent, CourierStatus

router = APIRouter(prefix="/sandbox", tags=["sandbox"])


class AdvanceIn(BaseModel):
    status: CourierStatus
    note: str = ""


def _refused(refusal: AdapterRefusal) -> Problem:
    return Problem(409, refusal.code, "模拟操作未被接受", refusal.message)


@router.post(
    "/cashier/{bill_id}/pay",
    response_model=PaymentNotice,
    responses=problem_responses(401, 404, 409),
    summary="模拟支付",
)
async def pay(bill_id: str, actor: PatientDep, session: SessionDep, ctx: ContextDep) -> PaymentNotice:
    """The patient pays their own bill at the sandbox cashier; the channel's signed callback follows."""
    bill = await visible_bill(session, actor, bill_id)
    payment = ctx.adapters.merchants.channel(bill.campus)
    if not isinstance(payment, SandboxPayment):
        raise Problem(404, "NOT_FOUND", "未启用模拟支付", "当前支付渠道不是沙箱渠道")
    try:
        headers, body = await payment.simulate_payment(bill_id)
    except AdapterRefusal as refusal:
        raise _refused(refusal) from refusal
    return await deliver_payment_notice(ctx.temporal, payment, headers, body)


class AuthorizedOut(BaseModel):
    bill_id: str
    status: str


@router.post(
    "/insurance/{bill_id}/authorize",
    response_model=AuthorizedOut,
    responses=problem_responses(401, 404, 409),
    summary="模拟医保移动支付授权",
)
async def authorize_insurance(bill_id: str, actor: PatientDep, session: SessionDep, ctx: ContextDep) -> AuthorizedOut:
    """The patient authorizes paying their own bill with 医保 on the sandbox platform's authorization page; the
    platform's signed report of the authorization follows."""
    bill = await visible_bill(session, actor, bill_id)
    insurance = ctx.adapters.insurance
    if not isinstance(insurance, SandboxInsurance):
        raise Problem(404, "NOT_FOUND", "未启用模拟医保平台", "当前医保平台接口不是沙箱")
    try:
        identity = await load_identity(session, ctx.cipher, bill.patient_id)
    except ApplicationError as refusal:
        raise Problem(409, refusal.type or "IDENTITY_MISSING", "模拟操作未被接受", refusal.message) from refusal
    headers, body = insurance.simulate_authorization(bill_id, user_name=identity.name, id_no=identity.id_card_no)
    await deliver_insurance_authorization(ctx.temporal, session, ctx.cipher, insurance, headers, body)
    return AuthorizedOut(bill_id=bill_id, status="authorized")


@router.post(
    "/courier/{waybill_no}/advance",
    response_model=CourierEvent,
    responses=problem_responses(401, 403, 404, 409),
    summary="模拟物流节点",
)
async def advance(
    waybill_no: str, body: AdvanceIn, actor: AdminDep, session: SessionDep, ctx: ContextDep
) -> CourierEvent:
    courier = ctx.adapters.courier
    if not isinstance(courier, SandboxCourier):
        raise Problem(404, "NOT_FOUND", "未启用模拟物流", "当前物流公司不是沙箱")
    try:
        headers, payload = await courier.advance(waybill_no, body.status, note=body.note)
    except AdapterRefusal as refusal:
        raise _refused(refusal) from refusal
    return await deliver_courier_event(ctx.temporal, session, courier, headers, payload)

"""Callbacks from outside systems: verified by the adapter that speaks the peer's protocol, then signalled to the
flow they belong to. The same path serves real channels and the sandbox simulators."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.adapters.courier import Courier
from activities.adapters.errors import InvalidCallback
from activities.adapters.insurance import MedicalInsurance
from activities.adapters.payment import PaymentChannel
from activities.insurance_pay import AUTHORIZATION_COLUMN
from api.errors import Problem
from core.crypto.sm import FieldCipher
from models.billing import PaymentNotice
from models.fulfilment import CourierEvent
from models.insurance import MobileSettlementNotice
from models.tables import Fulfilment, InsuranceCredential, InsuranceSettlement, Patient
from workflows.bill import BillWorkflow, bill_workflow_id
from workflows.fulfilment import FulfilmentWorkflow, fulfilment_workflow_id

log = structlog.get_logger()
_T = TypeVar("_T")


def _invalid(error: InvalidCallback) -> Problem:
    return Problem(401, "INVALID_CALLBACK", "回调验签失败", str(error) or "签名、时间戳或内容校验未通过")


def _verified(
    parse: Callable[[Mapping[str, str], bytes], _T], headers: Mapping[str, str], body: bytes, **peer: str
) -> _T:
    """What a peer's callback says, once its signature verifies (401 otherwise)."""
    try:
        return parse(headers, body)
    except InvalidCallback as error:
        log.warning("callback refused", callback=getattr(parse, "__name__", ""), **peer)
        raise _invalid(error) from error


async def _signal(handle, signal, *args) -> bool:  # type: ignore[no-untyped-def]
    """False when the flow has already ended (a late or repeated callback): nothing is left to do with it."""
    try:
        await handle.signal(signal, *args)
    except RPCError as failure:
        if failure.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            return False
        raise
    return True


async def deliver_payment_notice(
    temporal: Client, payment: PaymentChannel, headers: Mapping[str, str], body: bytes
) -> PaymentNotice:
    try:
        notice = payment.parse_payment_notice(headers, body)
    except InvalidCallback as error:
        log.warning("payment callback refused", channel=payment.name)
        raise _invalid(error) from error
    handle = temporal.get_workflow_handle(bill_workflow_id(notice.out_trade_no))
    if not await _signal(handle, BillWorkflow.payment_notice, notice):
        log.warning("payment notice for a closed bill", bill_id=notice.out_trade_no, status=notice.status.value)
    return notice


async def deliver_insurance_authorization(
    temporal: Client,
    session: AsyncSession,
    cipher: FieldCipher,
    insurance: MedicalInsurance,
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """The 医保 platform reports a patient's payment authorization for a bill (医保移动支付). It is kept only when it is
    the patient's own (their verified ID card), encrypted, the first one reported winning (the flow may already be
    using it); the bill's flow hears only that it came. Answers with the bill's id."""
    authorization = _verified(insurance.parse_mobile_authorization, headers, body, adapter=insurance.name)
    bill_id = authorization.med_org_ord
    credential = await session.get(InsuranceCredential, bill_id)
    if credential is None or not credential.mobile:
        raise Problem(404, "NOT_FOUND", "订单不存在", "该订单未选择医保移动支付")
    index = (
        await session.execute(select(col(Patient.id_card_index)).where(col(Patient.id) == credential.patient_id))
    ).scalar()
    if index is None or index != cipher.blind_index("id_card", authorization.id_no):
        raise Problem(409, "INSURANCE_AUTH_NOT_PATIENT", "医保授权与患者不符", "该医保授权不是本订单患者本人的授权")
    await session.execute(
        update(InsuranceCredential)
        .where(col(InsuranceCredential.bill_id) == bill_id, col(InsuranceCredential.pay_auth_no_enc).is_(None))
        .values(
            pay_auth_no_enc=cipher.encrypt(AUTHORIZATION_COLUMN, authorization.pay_auth_no),
            authorized_at=datetime.now(UTC),
        )
    )
    await session.commit()
    handle = temporal.get_workflow_handle(bill_workflow_id(bill_id))
    if not await _signal(handle, BillWorkflow.insurance_authorized):
        log.warning("insurance authorization for a closed bill", bill_id=bill_id)
    return bill_id


async def deliver_insurance_notice(
    temporal: Client, session: AsyncSession, insurance: MedicalInsurance, headers: Mapping[str, str], body: bytes
) -> MobileSettlementNotice:
    """The platform's settlement notice of a mobile order: a hint the bill's flow confirms by asking (6301)."""
    notice = _verified(insurance.parse_mobile_notice, headers, body, adapter=insurance.name)
    bill_id = (
        await session.execute(
            select(col(InsuranceSettlement.bill_id)).where(col(InsuranceSettlement.pay_ord_id) == notice.pay_ord_id)
        )
    ).scalar()
    if bill_id is None:
        raise Problem(404, "NOT_FOUND", "医保订单不存在", f"医保订单 {notice.pay_ord_id} 不属于任何订单")
    handle = temporal.get_workflow_handle(bill_workflow_id(bill_id))
    if not await _signal(handle, BillWorkflow.insurance_notice, notice.pay_ord_id):
        log.info("insurance notice for a closed bill", bill_id=bill_id)
    return notice


async def deliver_courier_event(
    temporal: Client, session: AsyncSession, courier: Courier, headers: Mapping[str, str], body: bytes
) -> CourierEvent:
    try:
        event = courier.parse_webhook(headers, body)
    except InvalidCallback as error:
        raise _invalid(error) from error
    prescription_id = (
        await session.execute(
            select(col(Fulfilment.prescription_id)).where(col(Fulfilment.waybill_no) == event.waybill_no)
        )
    ).scalar()
    if prescription_id is None:
        raise Problem(404, "NOT_FOUND", "运单不存在", f"运单 {event.waybill_no} 不属于任何处方")
    handle = temporal.get_workflow_handle(fulfilment_workflow_id(prescription_id))
    await _signal(handle, FulfilmentWorkflow.courier_event, event)
    return event

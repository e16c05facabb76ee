"""Callbacks from outside systems: verified by the adapter that speaks the peer's protocol, then signalled to the
flow they belong to. The same path serves real channels and the sandbox simulators."""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.adapters.courier import Courier
from activities.adapters.errors import InvalidCallback
from activities.adapters.payment import PaymentChannel
from api.errors import Problem
from models.billing import PaymentNotice
from models.fulfilment import CourierEvent
from models.tables import Fulfilment
from workflows.bill import BillWorkflow, bill_workflow_id
from workflows.fulfilment import FulfilmentWorkflow, fulfilment_workflow_id

log = structlog.get_logger()


def _invalid(error: InvalidCallback) -> Problem:
    return Problem(401, "INVALID_CALLBACK", "回调验签失败", str(error) or "签名、时间戳或内容校验未通过")


async def _signal(handle, signal, arg) -> bool:  # type: ignore[no-untyped-def]
    """False when the flow has already ended (a late or repeated callback): nothing is left to do with it."""
    try:
        await handle.signal(signal, arg)
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

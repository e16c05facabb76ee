"""Sandbox payment channel: orders, a cashier page that pays them, signed payment callbacks, and capped refunds.

Order state is row-locked (`SELECT … FOR UPDATE`) wherever paying, closing and refunding could race, so the peer
decides each race exactly once, as a real channel does.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.errors import AdapterRefusal, InvalidCallback
from activities.adapters.payment.statement import StatementNotReady
from activities.adapters.sandbox import CALLS, recorder_for, sign_callback, table, utcnow, verify_callback
from core.crypto.sm import sm3_hex
from core.settings import Settings
from models.billing import (
    ChannelBillLine,
    ChannelBillLineKind,
    ChannelOrder,
    ChannelOrderStatus,
    ChannelRefund,
    PaymentNotice,
    RefundStatus,
)
from models.common import HOSPITAL_TZ
from models.tables.sandbox import SandboxPayOrder, SandboxRefund

SYSTEM = "payment"
_refunds = table(SandboxRefund)
_orders = table(SandboxPayOrder)


class SandboxPayment:
    name = "sandbox"

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings
        self._recorder = recorder_for(sessions, settings)

    # --- the channel API -------------------------------------------------------------------------------------------

    async def create_order(
        self, *, idempotency_key: str, out_trade_no: str, amount_fen: int, description: str, expires_at: datetime
    ) -> ChannelOrder:
        if amount_fen <= 0:
            raise AdapterRefusal("INVALID_AMOUNT", "支付金额必须大于零")
        if expires_at.tzinfo is None:  # the convention is aware UTC; read a naive value as UTC rather than fail
            expires_at = expires_at.replace(tzinfo=UTC)
        request = {
            "out_trade_no": out_trade_no,
            "amount_fen": amount_fen,
            "description": description,
            "expires_at": expires_at.isoformat(),
        }

        async def perform(session: AsyncSession) -> dict[str, Any]:
            await session.execute(
                insert(SandboxPayOrder)
                .values(
                    out_trade_no=out_trade_no,
                    amount_fen=amount_fen,
                    description=description,
                    status=ChannelOrderStatus.NOTPAY.value,
                    charges=0,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["out_trade_no"])
            )
            # Another key may have created this order already; it is the same order only if the amount agrees.
            order = await session.get(SandboxPayOrder, out_trade_no)
            assert order is not None
            if order.amount_fen != amount_fen:
                raise AdapterRefusal("OUT_TRADE_NO_USED", "商户订单号已被使用，且金额不一致")
            return {"out_trade_no": out_trade_no}

        await self._recorder.once(SYSTEM, "create_order", idempotency_key, request, perform)
        # Answer with the order as it is now, so a retry after payment does not report a stale NOTPAY.
        return await self._order(out_trade_no)

    async def query_order(self, *, out_trade_no: str) -> ChannelOrder:
        await self._recorder.gate(SYSTEM, "query_order", out_trade_no)
        return await self._order(out_trade_no)

    async def close_order(self, *, idempotency_key: str, out_trade_no: str) -> ChannelOrder:
        async def perform(session: AsyncSession) -> dict[str, Any]:
            order = await self._locked(session, out_trade_no)
            # Paid meanwhile: report it paid, never fail, so the caller goes on to treat the bill as paid.
            if order.status == ChannelOrderStatus.NOTPAY:
                order.status = ChannelOrderStatus.CLOSED.value
            return {"status": order.status}

        await self._recorder.once(SYSTEM, "close_order", idempotency_key, {"out_trade_no": out_trade_no}, perform)
        return await self._order(out_trade_no)

    async def refund(
        self, *, idempotency_key: str, out_trade_no: str, out_refund_no: str, amount_fen: int, reason: str
    ) -> ChannelRefund:
        if amount_fen <= 0:
            raise AdapterRefusal("INVALID_AMOUNT", "退款金额必须大于零")
        request = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "amount_fen": amount_fen,
            "reason": reason,
        }

        async def perform(session: AsyncSession) -> dict[str, Any]:
            # The order lock serializes refunds of one order, so two refunds cannot both fit under the cap.
            order = await self._locked(session, out_trade_no)
            existing = await session.get(SandboxRefund, out_refund_no)
            if existing is not None:
                if existing.out_trade_no != out_trade_no or existing.amount_fen != amount_fen:
                    raise AdapterRefusal("OUT_REFUND_NO_USED", "退款单号已被使用，且订单或金额不一致")
                return {"out_refund_no": out_refund_no}
            if order.status != ChannelOrderStatus.SUCCESS:
                raise AdapterRefusal("ORDER_NOT_PAID", "订单未支付，无法退款")
            refunded = await session.scalar(
                select(func.coalesce(func.sum(_refunds.c.amount_fen), 0)).where(_refunds.c.out_trade_no == out_trade_no)
            )
            if int(refunded or 0) + amount_fen > order.amount_fen:
                left = order.amount_fen - int(refunded or 0)
                raise AdapterRefusal("REFUND_EXCEEDS_PAID", f"退款金额超过可退金额（可退 {left} 分）")
            session.add(
                SandboxRefund(
                    out_refund_no=out_refund_no,
                    out_trade_no=out_trade_no,
                    amount_fen=amount_fen,
                    status=RefundStatus.SUCCEEDED.value,
                    refund_id=f"SBRF{uuid.uuid4().hex[:24].upper()}",
                    created_at=utcnow(),
                )
            )
            return {"out_refund_no": out_refund_no}

        await self._recorder.once(SYSTEM, "refund", idempotency_key, request, perform)
        return await self._refund(out_refund_no)

    async def query_refund(self, *, out_trade_no: str, out_refund_no: str) -> ChannelRefund:
        await self._recorder.gate(SYSTEM, "query_refund", out_refund_no)
        return await self._refund(out_refund_no)

    def parse_payment_notice(self, headers: Mapping[str, str], body: bytes) -> PaymentNotice:
        verify_callback(self._settings.sandbox_notify_secret, headers, body)
        try:
            return PaymentNotice.model_validate_json(body)
        except ValueError as exc:
            raise InvalidCallback("callback body is not a payment notice") from exc

    async def download_bill(self, *, bill_date: date) -> list[ChannelBillLine]:
        """The day's payments and refunds (Beijing time), read from this sandbox's own orders and refunds.

        Ready as soon as the day is over, where real channels take until about 10:00 the next day.
        """
        await self._recorder.gate(SYSTEM, "download_bill", bill_date.isoformat())
        start = datetime.combine(bill_date, time.min, HOSPITAL_TZ)
        end = start + timedelta(days=1)
        if utcnow() < end:
            raise StatementNotReady(f"沙箱支付 {bill_date} 的对账单在当日结束后才生成")
        async with self._sessions() as session:
            paid = await session.execute(
                select(_orders)
                .where(_orders.c.paid_at >= start, _orders.c.paid_at < end)
                .order_by(_orders.c.paid_at, _orders.c.out_trade_no)
            )
            refunded = await session.execute(
                select(_refunds, _orders.c.transaction_id)
                .join(_orders, _orders.c.out_trade_no == _refunds.c.out_trade_no)
                .where(_refunds.c.created_at >= start, _refunds.c.created_at < end)
                .order_by(_refunds.c.created_at, _refunds.c.out_refund_no)
            )
            payments = [
                ChannelBillLine(
                    kind=ChannelBillLineKind.PAYMENT,
                    out_trade_no=order.out_trade_no,
                    transaction_id=order.transaction_id or "",
                    amount_fen=order.amount_fen,
                    occurred_at=order.paid_at,
                    status=order.status,
                )
                for order in paid
            ]
            refunds = [
                ChannelBillLine(
                    kind=ChannelBillLineKind.REFUND,
                    out_trade_no=refund.out_trade_no,
                    transaction_id=refund.transaction_id or "",
                    amount_fen=refund.amount_fen,
                    occurred_at=refund.created_at,
                    out_refund_no=refund.out_refund_no,
                    refund_id=refund.refund_id,
                    # The words WeChat Pay's bill uses: REFUND for a refund done, REFUND_<state> otherwise.
                    status="REFUND" if refund.status == RefundStatus.SUCCEEDED else f"REFUND_{refund.status.upper()}",
                )
                for refund in refunded
            ]
        return payments + refunds

    # --- the cashier side (used by the API's sandbox cashier page, and by tests) -----------------------------------

    async def simulate_payment(
        self, out_trade_no: str, *, signed_at: datetime | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The payer pays: mark the order paid (once) and return the signed callback the channel would send.

        Paying an already paid order charges nothing more and returns a fresh callback, like a channel redelivering.
        `signed_at` backdates the callback's signature, for replay tests.
        """
        async with self._sessions() as session, session.begin():
            order = await self._locked(session, out_trade_no)
            if order.status == ChannelOrderStatus.CLOSED:
                raise AdapterRefusal("ORDER_CLOSED", "订单已关闭，无法支付")
            if order.status == ChannelOrderStatus.NOTPAY:
                expires_at = await self._expires_at(session, out_trade_no)
                if expires_at is not None and utcnow() > expires_at:
                    raise AdapterRefusal("ORDER_EXPIRED", "订单已超过支付时限，无法支付")
                order.status = ChannelOrderStatus.SUCCESS.value
                order.transaction_id = f"SBTX{uuid.uuid4().hex[:24].upper()}"
                order.paid_at = utcnow()
                order.charges += 1
            notice = PaymentNotice(
                out_trade_no=order.out_trade_no,
                status=ChannelOrderStatus(order.status),
                amount_fen=order.amount_fen,
                transaction_id=order.transaction_id,
                paid_at=order.paid_at,
            )
        body = notice.model_dump_json().encode()
        return sign_callback(self._settings.sandbox_notify_secret, body, at=signed_at), body

    async def charges(self, out_trade_no: str) -> int:
        """How many times the payer was actually charged for this order (must never exceed 1)."""
        async with self._sessions() as session:
            order = await session.get(SandboxPayOrder, out_trade_no)
            return 0 if order is None else order.charges

    # --- helpers ---------------------------------------------------------------------------------------------------

    def _pay_url(self, out_trade_no: str) -> str:
        return f"{self._settings.api_base_url}/api/v1/sandbox/cashier/{out_trade_no}"

    async def _order(self, out_trade_no: str) -> ChannelOrder:
        async with self._sessions() as session:
            order = await session.get(SandboxPayOrder, out_trade_no)
        if order is None:
            raise AdapterRefusal("ORDER_NOT_EXIST", "订单不存在")
        return ChannelOrder(
            out_trade_no=order.out_trade_no,
            amount_fen=order.amount_fen,
            status=ChannelOrderStatus(order.status),
            # Derived from the order number, so every answer about one order carries the same prepay id.
            prepay_id=f"sbprepay_{sm3_hex(order.out_trade_no.encode())[:24]}",
            pay_url=self._pay_url(order.out_trade_no),
            transaction_id=order.transaction_id,
            paid_at=order.paid_at,
        )

    async def _refund(self, out_refund_no: str) -> ChannelRefund:
        async with self._sessions() as session:
            refund = await session.get(SandboxRefund, out_refund_no)
        if refund is None:
            raise AdapterRefusal("REFUND_NOT_EXIST", "退款单不存在")
        return ChannelRefund(
            out_refund_no=refund.out_refund_no,
            out_trade_no=refund.out_trade_no,
            amount_fen=refund.amount_fen,
            status=RefundStatus(refund.status),
            refund_id=refund.refund_id,
            succeeded_at=refund.created_at if refund.status == RefundStatus.SUCCEEDED else None,
        )

    @staticmethod
    async def _locked(session: AsyncSession, out_trade_no: str) -> SandboxPayOrder:
        order = await session.get(SandboxPayOrder, out_trade_no, with_for_update=True)
        if order is None:
            raise AdapterRefusal("ORDER_NOT_EXIST", "订单不存在")
        return order

    @staticmethod
    async def _expires_at(session: AsyncSession, out_trade_no: str) -> datetime | None:
        # `sandbox_pay_orders` has no expiry column; the time limit is in the recorded create_order request.
        raw = await session.scalar(
            select(CALLS.c.request["expires_at"].astext)
            .where(
                CALLS.c.system == SYSTEM,
                CALLS.c.operation == "create_order",
                CALLS.c.request["out_trade_no"].astext == out_trade_no,
            )
            .order_by(CALLS.c.id)
            .limit(1)
        )
        return datetime.fromisoformat(raw) if raw else None

"""Bills and refunds: the channel calls (with idempotency keys) and the rows that record them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.adapters.payment import PaymentChannel
from activities.errors import business_error, refusals_are_final
from models.billing import (
    BillInput,
    BillState,
    BillStatus,
    ChannelOrder,
    ChannelRefund,
    RefundInput,
    RefundResult,
    RefundStatus,
)
from models.tables import Bill, Refund


class BillingActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], payment: PaymentChannel) -> None:
        self._sessions = sessions
        self._payment = payment

    # --- channel calls (integration queue) ---

    @activity.defn
    async def create_channel_order(self, bill: BillInput) -> ChannelOrder:
        expires_at = datetime.now(UTC) + timedelta(seconds=bill.pay_window_s)
        return await refusals_are_final(
            self._payment.create_order(
                idempotency_key=f"{bill.bill_id}:create",
                out_trade_no=bill.bill_id,
                amount_fen=bill.amount_fen,
                description=bill.description,
                expires_at=expires_at,
            )
        )

    @activity.defn
    async def close_channel_order(self, bill_id: str) -> ChannelOrder:
        return await refusals_are_final(
            self._payment.close_order(idempotency_key=f"{bill_id}:close", out_trade_no=bill_id)
        )

    @activity.defn
    async def request_channel_refund(self, refund: RefundInput) -> ChannelRefund:
        return await refusals_are_final(
            self._payment.refund(
                idempotency_key=refund.refund_id,
                out_trade_no=refund.bill_id,
                out_refund_no=refund.refund_id,
                amount_fen=refund.amount_fen,
                reason=refund.reason,
            )
        )

    @activity.defn
    async def query_channel_refund(self, refund_id: str) -> ChannelRefund:
        async with self._sessions() as session:
            refund = await session.get(Refund, refund_id)
        if refund is None:
            raise business_error("REFUND_NOT_FOUND", "退款记录不存在")
        return await self._payment.query_refund(out_trade_no=refund.bill_id, out_refund_no=refund_id)

    # --- records (local activities) ---

    @activity.defn
    async def record_bill(self, bill: BillInput, state: BillState) -> None:
        values = {
            "status": state.status.value,
            "pay_url": state.pay_url,
            "pay_deadline": state.pay_deadline,
            "transaction_id": state.transaction_id,
            "paid_at": state.paid_at,
            "closed_at": datetime.now(UTC) if state.status is BillStatus.CLOSED else None,
        }
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(Bill)
                .values(
                    id=bill.bill_id,
                    kind=bill.kind.value,
                    ref_id=bill.ref_id,
                    patient_id=bill.patient_id,
                    amount_fen=bill.amount_fen,
                    description=bill.description,
                    channel=bill.channel,
                    **values,
                )
                .on_conflict_do_update(index_elements=["id"], set_=values)
            )

    @activity.defn
    async def reserve_refund(self, refund: RefundInput) -> None:
        """Claim the refund amount against the bill; a refund can never exceed what was paid, nor happen twice."""
        async with self._sessions() as session, session.begin():
            inserted = (
                await session.execute(
                    insert(Refund)
                    .values(
                        id=refund.refund_id,
                        bill_id=refund.bill_id,
                        amount_fen=refund.amount_fen,
                        reason=refund.reason,
                        requested_by=refund.requested_by,
                        status=RefundStatus.PROCESSING.value,
                    )
                    .on_conflict_do_nothing(index_elements=["id"])
                    .returning(col(Refund.id))
                )
            ).scalar()
            if inserted is None:
                return  # this refund was reserved by an earlier attempt
            claimed = (
                await session.execute(
                    update(Bill)
                    .where(
                        col(Bill.id) == refund.bill_id,
                        col(Bill.status) == BillStatus.PAID.value,
                        col(Bill.refunded_fen) + refund.amount_fen <= col(Bill.amount_fen),
                    )
                    .values(refunded_fen=col(Bill.refunded_fen) + refund.amount_fen)
                    .returning(col(Bill.id))
                )
            ).scalar()
            if claimed is None:
                raise business_error("REFUND_EXCEEDS_PAID", "退款金额超过可退金额，或订单未支付")

    @activity.defn
    async def finish_refund(self, result: RefundResult) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Refund)
                .where(col(Refund.id) == result.refund_id)
                .values(
                    status=result.status.value,
                    channel_refund_id=result.channel_refund_id,
                    finished_at=datetime.now(UTC),
                )
            )
            if result.status is RefundStatus.FAILED:
                # Give the claimed amount back so the refund can be tried again through another path.
                await session.execute(
                    update(Bill)
                    .where(col(Bill.id) == result.bill_id)
                    .values(refunded_fen=col(Bill.refunded_fen) - result.amount_fen)
                )

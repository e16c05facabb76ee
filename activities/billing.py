"""Bills and refunds: the channel calls (with idempotency keys) and the rows that record them.

Every call about a bill goes through the merchant that took it (`Merchants`: one per campus). A refund is claimed
against its bill in PostgreSQL before anything is asked of the channel or the 医保 platform, in one statement that
can never let the refunded amounts pass what was paid: that claim is what makes a refund happen at most once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.adapters.insurance.split import fen_to_yuan
from activities.adapters.payment import PaymentChannel
from activities.adapters.payment.merchants import Merchants
from activities.errors import business_error, refusals_are_final
from activities.insurance_pay import settled_split
from core.settings import Settings
from models.billing import (
    BillInput,
    BillKind,
    BillState,
    BillStatus,
    ChannelOrder,
    ChannelRefund,
    InsurancePath,
    InsuranceResettle,
    NegotiationEntry,
    RefundInput,
    RefundPlan,
    RefundResult,
    RefundStatus,
)
from models.reconciliation import INSURANCE_CHANNEL
from models.tables import (
    Bill,
    Doctor,
    ExamOrder,
    InsuranceSettlement,
    Prescription,
    Refund,
    RefundNegotiation,
    Visit,
)

# Bills of things ordered in a visit: where their row names the visit.
_VISIT_OF: dict[BillKind, tuple[Any, Any]] = {
    BillKind.PRESCRIPTION: (col(Prescription.visit_id), col(Prescription.id)),
    BillKind.EXAM: (col(ExamOrder.visit_id), col(ExamOrder.id)),
}

# A special refund's row exists from its start, so its negotiation can be recorded; it is claimed when concluded.
NEGOTIATING = "negotiating"


class BillingActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        payment: PaymentChannel,
        *,
        merchants: Merchants | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._sessions = sessions
        self._merchants = merchants or Merchants(payment)
        defaults = Settings.model_fields
        self._arrival: dict[str, str] = (
            dict(settings.refund_arrival) if settings else dict(defaults["refund_arrival"].default)
        )
        self._arrival_default: str = (
            settings.refund_arrival_default if settings else defaults["refund_arrival_default"].default
        )

    # --- channel calls (integration queue) ---

    @activity.defn
    async def create_channel_order(self, bill: BillInput) -> ChannelOrder:
        """Open the order at the merchant the settings' rule picks; `bill.amount_fen` is what the channel collects."""
        department = await self._department(bill) if self._merchants.needs_department else None
        campus = self._merchants.pick(kind=bill.kind.value, department=department)
        expires_at = datetime.now(UTC) + timedelta(seconds=bill.pay_window_s)
        order = await refusals_are_final(
            self._merchants.channel(campus).create_order(
                idempotency_key=f"{bill.bill_id}:create",
                out_trade_no=bill.bill_id,
                amount_fen=bill.amount_fen,
                description=bill.description,
                expires_at=expires_at,
            )
        )
        return order.model_copy(update={"campus": campus})

    @activity.defn
    async def close_channel_order(self, bill_id: str) -> ChannelOrder:
        channel = await self._channel_of(bill_id)
        return await refusals_are_final(channel.close_order(idempotency_key=f"{bill_id}:close", out_trade_no=bill_id))

    @activity.defn
    async def request_channel_refund(self, refund: RefundInput) -> ChannelRefund:
        channel = await self._channel_of(refund.bill_id)
        return await refusals_are_final(
            channel.refund(
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
        channel = await self._channel_of(refund.bill_id)
        return await channel.query_refund(out_trade_no=refund.bill_id, out_refund_no=refund_id)

    async def _channel_of(self, bill_id: str) -> PaymentChannel:
        async with self._sessions() as session:
            campus = (await session.execute(select(col(Bill.campus)).where(col(Bill.id) == bill_id))).scalar()
        return self._merchants.channel(campus)

    async def _department(self, bill: BillInput) -> str | None:
        """The department of the visit the bill belongs to (a prescription's or an exam order's through its visit)."""
        visit_id = col(Visit.id) == bill.ref_id
        owner = _VISIT_OF.get(bill.kind)
        if owner is not None:
            visit_column, id_column = owner
            visit_id = col(Visit.id) == select(visit_column).where(id_column == bill.ref_id).scalar_subquery()
        query = select(col(Doctor.department_id)).join(Visit, col(Visit.doctor_id) == col(Doctor.id)).where(visit_id)
        async with self._sessions() as session:
            return (await session.execute(query)).scalar()

    # --- records (local activities) ---

    @activity.defn
    async def record_bill(self, bill: BillInput, state: BillState) -> None:
        covered = state.insurance.covered_fen if state.insurance else 0
        values: dict[str, Any] = {
            "status": state.status.value,
            "pay_url": state.pay_url,
            "pay_deadline": state.pay_deadline,
            "transaction_id": state.transaction_id,
            "paid_at": state.paid_at,
            "closed_at": datetime.now(UTC) if state.status is BillStatus.CLOSED else None,
            "amount_fen": state.channel_fen,
            "insurance_fen": covered,
            # Nothing left for a channel when 医保 paid it all: the channel's statements never show it.
            "channel": bill.channel if state.channel_fen > 0 or not covered else INSURANCE_CHANNEL,
            "campus": state.campus,
        }
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(Bill)
                .values(
                    id=bill.bill_id,
                    kind=bill.kind.value,
                    ref_id=bill.ref_id,
                    patient_id=bill.patient_id,
                    description=bill.description,
                    **values,
                )
                .on_conflict_do_update(index_elements=["id"], set_=values)
            )

    @activity.defn
    async def reserve_refund(self, refund: RefundInput) -> None:
        """Claim the refund amount against the bill's channel part (flows from before the 医保 split)."""
        async with self._sessions() as session, session.begin():
            await _claim(session, refund, channel_fen=refund.amount_fen, insurance_fen=0, final=False)

    @activity.defn
    async def open_special_refund(self, refund: RefundInput) -> None:
        """The row a special refund's negotiation is recorded against; nothing is claimed until it is concluded."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(Refund)
                .values(**_refund_row(refund), amount_fen=0, insurance_fen=0, final=False, status=NEGOTIATING)
                .on_conflict_do_nothing(index_elements=["id"])
            )

    @activity.defn
    async def record_negotiation(self, refund_id: str, entry: NegotiationEntry) -> None:
        async with self._sessions() as session, session.begin():
            session.add(
                RefundNegotiation(
                    refund_id=refund_id,
                    party=entry.party.value,
                    agreed=entry.agreed,
                    amount_fen=entry.amount_fen,
                    note=entry.note,
                    recorded_by=entry.recorded_by,
                )
            )

    @activity.defn
    async def claim_refund(self, refund: RefundInput) -> RefundPlan:
        """Claim `refund.amount_fen` against what is left of the bill and say how it goes back.

        A 医保 settlement goes back only whole (2208 / 6203). A refund of everything left takes it with the channel
        part; one within the self-pay part comes out of the channel part alone. One in between reaches the insured
        part: as the 医保 rules allow, the whole settlement goes back and what remains of the bill is settled anew,
        the channel returning the self-pay difference. Until the new settlement says how much stays paid, such a
        claim holds everything left of the bill, so no other refund can take any of it meanwhile. A retried claim
        finds its refund already claimed and answers with the same plan.
        """
        async with self._sessions() as session, session.begin():
            bill = (
                await session.execute(select(Bill).where(col(Bill.id) == refund.bill_id).with_for_update())
            ).scalar_one_or_none()
            if bill is None or bill.status != BillStatus.PAID.value:
                raise business_error("REFUND_EXCEEDS_PAID", "订单未支付，无法退款")
            settlement = await session.get(InsuranceSettlement, bill.id)
            claimed = await session.get(Refund, refund.refund_id)
            if claimed is not None and claimed.status != NEGOTIATING:
                channel_fen, insurance_fen, final = claimed.amount_fen, claimed.insurance_fen, claimed.final
                # Only a re-settling claim holds a 医保 part without returning everything left.
                resettling = bool(insurance_fen) and not final
            else:
                channel_fen, insurance_fen, final, resettling = _split_refund(bill, refund.amount_fen, settlement)
                await _claim(session, refund, channel_fen=channel_fen, insurance_fen=insurance_fen, final=final)
            insurance = settled_split(settlement) if insurance_fen and settlement is not None else None
        resettle = None
        if resettling:
            assert settlement is not None
            resettle = InsuranceResettle(
                kind=BillKind(bill.kind),
                ref_id=bill.ref_id,
                remaining_fen=channel_fen + insurance_fen - refund.amount_fen,
                cash_held_fen=channel_fen,
                insurance_held_fen=insurance_fen,
                path=InsurancePath.MOBILE if settlement.mobile else InsurancePath.HOSPITAL,
            )
        return RefundPlan(
            refund_id=refund.refund_id,
            channel_fen=channel_fen,
            insurance=insurance,
            final=final,
            eta=self._resettle_eta(bill.channel) if resettling else self._eta(bill.channel, channel_fen, insurance_fen),
            resettle=resettle,
        )

    @activity.defn
    async def finish_refund(self, result: RefundResult) -> None:
        async with self._sessions() as session, session.begin():
            row = await session.get(Refund, result.refund_id, with_for_update=True)
            if result.resettle:
                await _finish_resettle(session, row, result)
                return
            await session.execute(update(Refund).where(col(Refund.id) == result.refund_id).values(**_finished(result)))
            if result.status is not RefundStatus.FAILED or row is None:
                return
            # Give back what was claimed and not paid back, so the refund can be tried again another way. A flow
            # from before the 医保 split claimed its whole amount from the channel part.
            channel_back = result.amount_fen if result.channel_fen is None else result.channel_fen
            insurance_back = row.insurance_fen if result.insurance_fen == 0 else 0
            await session.execute(
                update(Bill)
                .where(col(Bill.id) == result.bill_id)
                .values(
                    refunded_fen=col(Bill.refunded_fen) - channel_back,
                    insurance_refunded_fen=col(Bill.insurance_refunded_fen) - insurance_back,
                )
            )
            if insurance_back:
                await session.execute(update(Refund).where(col(Refund.id) == result.refund_id).values(insurance_fen=0))

    def _resettle_eta(self, channel: str) -> str:
        """A re-settling refund's parts are known only once the remaining items are settled again."""
        insurance = self._arrival.get(INSURANCE_CHANNEL, "经医保平台退回")
        when = self._arrival.get(channel, self._arrival_default)
        return f"医保结算整单撤销后按剩余项目重新结算，医保部分{insurance}；自付差额原路退回，{when}"

    def _eta(self, channel: str, channel_fen: int, insurance_fen: int) -> str:
        """When the money arrives, per part, as the patient is told (8.4.2: 到账时间提示)."""
        parts = []
        if insurance_fen:
            parts.append(f"医保部分{_yuan(insurance_fen)}元{self._arrival.get(INSURANCE_CHANNEL, '经医保平台退回')}")
        if channel_fen:
            when = self._arrival.get(channel, self._arrival_default)
            parts.append(f"{'自付部分' if insurance_fen else ''}{_yuan(channel_fen)}元原路退回，{when}")
        return "；".join(parts)


def _split_refund(bill: Bill, amount_fen: int, settlement: InsuranceSettlement | None) -> tuple[int, int, bool, bool]:
    """(channel part, 医保 part, final, re-settling) of a refund of `amount_fen` from what is left of `bill`."""
    cash_left = bill.amount_fen - bill.refunded_fen
    insurance_left = bill.insurance_fen - bill.insurance_refunded_fen
    left = cash_left + insurance_left
    if not 0 < amount_fen <= left:
        raise business_error("REFUND_EXCEEDS_PAID", f"退款金额超过可退金额（剩余可退{_yuan(left)}元）")
    if insurance_left and amount_fen == left:
        return cash_left, insurance_left, True, False
    if amount_fen <= cash_left:
        return amount_fen, 0, amount_fen == left, False
    # Beyond the self-pay part: re-settle what remains. The channel then returns the cash paid less the new
    # settlement's cash part, which is never negative only while the cash still held is the current settlement's
    # own: once part of it went back on its own, the new cash part could exceed it, and nothing may be charged again.
    if settlement is None or settlement.status != "settled" or settlement.cash_fen != cash_left:
        raise business_error(
            "REFUND_INSURANCE_WHOLE",
            f"本单已单独退回过部分自付金额，不能再撤销医保结算后按剩余项目重新结算：部分退款最多退自付部分"
            f"{_yuan(cash_left)}元，或全额退款{_yuan(left)}元",
        )
    return cash_left, insurance_left, False, True


async def _finish_resettle(session: AsyncSession, row: Refund | None, result: RefundResult) -> None:
    """Close a re-settling refund: it holds everything left of the bill; what did not go back (the new
    settlement's parts) is left to the bill again. Once only: a finished refund is not touched again."""
    if row is None or row.status != RefundStatus.PROCESSING.value:
        return
    channel_back = result.channel_fen or 0
    # Taken before the refund row is rewritten (the ORM update refreshes `row` in the session).
    channel_kept, insurance_kept = row.amount_fen - channel_back, row.insurance_fen - result.insurance_fen
    await session.execute(
        update(Refund)
        .where(col(Refund.id) == result.refund_id)
        .values(**_finished(result), amount_fen=channel_back, insurance_fen=result.insurance_fen)
    )
    await session.execute(
        update(Bill)
        .where(col(Bill.id) == result.bill_id)
        .values(
            refunded_fen=col(Bill.refunded_fen) - channel_kept,
            insurance_refunded_fen=col(Bill.insurance_refunded_fen) - insurance_kept,
        )
    )


def _finished(result: RefundResult) -> dict[str, Any]:
    """The refund row's columns of how it ended."""
    return {
        "status": result.status.value,
        "channel_refund_id": result.channel_refund_id,
        "finished_at": datetime.now(UTC),
        "failure": result.failure,
    }


def _refund_row(refund: RefundInput) -> dict[str, Any]:
    return {
        "id": refund.refund_id,
        "bill_id": refund.bill_id,
        "reason": refund.reason,
        "requested_by": refund.requested_by,
        "kind": refund.kind.value,
        "reason_code": refund.reason_code,
        "authorized_by": refund.authorized_by,
    }


async def _claim(
    session: AsyncSession, refund: RefundInput, *, channel_fen: int, insurance_fen: int, final: bool
) -> None:
    """Record the refund and claim its parts against the bill, in the caller's transaction.

    The row is inserted (or a special refund's negotiating row taken) only once: a retry finds it claimed and claims
    nothing again. The bill's check constraints and this statement's conditions keep the channel part within what
    the channel took and the 医保 part within what 医保 paid.
    """
    amounts = {"amount_fen": channel_fen, "insurance_fen": insurance_fen, "final": final}
    fresh = (
        await session.execute(
            insert(Refund)
            .values(**_refund_row(refund), **amounts, status=RefundStatus.PROCESSING.value)
            .on_conflict_do_update(
                index_elements=["id"],
                set_={**amounts, "status": RefundStatus.PROCESSING.value},
                where=col(Refund.status) == NEGOTIATING,
            )
            .returning(col(Refund.id))
        )
    ).scalar()
    if fresh is None:
        return  # claimed by an earlier attempt
    conditions = [
        col(Bill.id) == refund.bill_id,
        col(Bill.status) == BillStatus.PAID.value,
        col(Bill.refunded_fen) + channel_fen <= col(Bill.amount_fen),
    ]
    if insurance_fen:
        conditions.append(col(Bill.insurance_refunded_fen) + insurance_fen <= col(Bill.insurance_fen))
    claimed = (
        await session.execute(
            update(Bill)
            .where(*conditions)
            .values(
                refunded_fen=col(Bill.refunded_fen) + channel_fen,
                insurance_refunded_fen=col(Bill.insurance_refunded_fen) + insurance_fen,
            )
            .returning(col(Bill.id))
        )
    ).scalar()
    if claimed is None:
        raise business_error("REFUND_EXCEEDS_PAID", "退款金额超过可退金额，或订单未支付")


def _yuan(fen: int) -> str:
    return str(fen_to_yuan(fen))

"""Bill (8.4.1): one payable order at a channel. Child of the flow that owes the money.

Opens the order at the channel, tells its parent where to pay, then waits for the channel's notice. When the
payment window passes it closes the order at the channel; if the channel says the order was paid meanwhile
(a lost or late callback), the bill is paid after all. The parent gets the final state as the child's result.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from models.billing import BillInput, BillState, BillStatus, ChannelOrder, ChannelOrderStatus, PaymentNotice
    from workflows.steps import Notices, call, db, local, yuan


BILL_OPENED_SIGNAL = "bill_opened"

_WHAT = {"registration": "挂号费", "prescription": "处方药费"}


def bill_workflow_id(bill_id: str) -> str:
    return f"bill-{bill_id}"


@workflow.defn(name="Bill")
class BillWorkflow:
    @workflow.init
    def __init__(self, bill: BillInput) -> None:
        self._notices = Notices()
        self._bill = bill
        self._state = BillState(bill_id=bill.bill_id, status=BillStatus.OPEN, amount_fen=bill.amount_fen)
        self._notice: PaymentNotice | None = None
        self._cancel_requested = False

    @workflow.run
    async def run(self, bill: BillInput) -> BillState:
        order: ChannelOrder = await call(BillingActivities.create_channel_order, bill)
        self._state.pay_url = order.pay_url
        self._state.pay_deadline = workflow.now() + timedelta(seconds=bill.pay_window_s)
        await db(BillingActivities.record_bill, bill, self._state)
        await self._tell_parent()
        what = _WHAT.get(bill.kind.value, bill.description)
        self._notices.send(
            "opened",
            f"patient:{bill.patient_id}",
            "bill_opened",
            what=what,
            amount=yuan(bill.amount_fen),
            deadline=local(self._state.pay_deadline, "%H:%M"),
        )

        try:
            await workflow.wait_condition(
                lambda: self._notice is not None or self._cancel_requested,
                timeout=timedelta(seconds=bill.pay_window_s),
            )
        except TimeoutError:
            pass

        if self._notice is None:
            # Unpaid by the deadline (or cancelled): close at the channel, which also tells us of a payment we missed.
            closed: ChannelOrder = await call(BillingActivities.close_channel_order, bill.bill_id)
            if closed.status is ChannelOrderStatus.SUCCESS:
                self._notice = PaymentNotice(
                    out_trade_no=bill.bill_id,
                    status=closed.status,
                    amount_fen=closed.amount_fen,
                    transaction_id=closed.transaction_id,
                    paid_at=closed.paid_at,
                )

        if self._notice is not None:
            self._state.status = BillStatus.PAID
            self._state.transaction_id = self._notice.transaction_id
            self._state.paid_at = self._notice.paid_at or workflow.now()
            await db(BillingActivities.record_bill, bill, self._state)
            self._notices.send(
                "paid",
                f"patient:{bill.patient_id}",
                "bill_paid",
                what=what,
                amount=yuan(bill.amount_fen),
                bill_id=bill.bill_id,
            )
        else:
            self._state.status = BillStatus.CLOSED
            await db(BillingActivities.record_bill, bill, self._state)
            if not self._cancel_requested:
                self._notices.send("closed", f"patient:{bill.patient_id}", "bill_closed", what=what)

        await self._notices.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _tell_parent(self) -> None:
        parent = workflow.info().parent
        if parent is not None:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(BILL_OPENED_SIGNAL, self._state)

    @workflow.signal
    def payment_notice(self, notice: PaymentNotice) -> None:
        """The channel's verified callback. Notices for another order or amount are ignored (and logged)."""
        if notice.out_trade_no != self._bill.bill_id or notice.amount_fen != self._bill.amount_fen:
            workflow.logger.warning("payment notice does not match the bill", extra={"bill_id": self._bill.bill_id})
            return
        if notice.status is ChannelOrderStatus.SUCCESS and self._notice is None:
            self._notice = notice

    @workflow.signal
    def cancel(self) -> None:
        """The owning flow no longer wants the money (the patient cancelled)."""
        self._cancel_requested = True

    @workflow.query
    def state(self) -> BillState:
        return self._state

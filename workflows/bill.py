"""Bill (8.4.1): one payable order at a channel. Child of the flow that owes the money.

When the patient presented a 医保 credential for the bill, the 医保 platform settles it first (pooled fund, personal
account, cash: to the fen) and only the cash part is ordered at the channel. Then the bill opens the order at the
merchant the settings pick, tells its parent where to pay, and waits for the channel's notice. When the payment
window passes it closes the order at the channel; if the channel says the order was paid meanwhile (a lost or late
callback), the bill is paid after all. A bill that closes unpaid gives its 医保 settlement back (2208). A paid bill
gets its e-invoice from a flow of its own. The parent gets the final state as the child's result.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from activities.insurance_pay import InsurancePayActivities
    from models.billing import (
        BillInput,
        BillState,
        BillStatus,
        ChannelOrder,
        ChannelOrderStatus,
        InsuranceRelease,
        InsuranceSettleRequest,
        PaymentNotice,
    )
    from models.invoice import InvoiceTask
    from workflows.invoice import InvoiceWorkflow, bill_link, invoice_workflow_id
    from workflows.steps import Notices, call, db, integration_queue, local, yuan


BILL_OPENED_SIGNAL = "bill_opened"
# Flows from before these patches neither settled 医保 nor had e-invoices issued.
INSURANCE_AT_PAYMENT = "insurance-at-payment"
E_INVOICE = "e-invoice"
# Settling messages per bill: a settlement whose answer never came is reversed (2601) and sent again as the next.
SETTLE_ATTEMPTS = 3
# The patient waits for the split before paying: a 医保 platform that keeps failing falls back to self-pay.
INSURANCE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=20), maximum_attempts=5
)

_WHAT = {"registration": "挂号费", "prescription": "处方药费"}


def bill_workflow_id(bill_id: str) -> str:
    return f"bill-{bill_id}"


def prescription_bill_id(prescription_id: str) -> str:
    """The bill of a prescription, as the Prescription flow names it (known before it opens)."""
    return f"{prescription_id}-pay"


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
        # Both patches are asked before any step: one asked right after a local activity can be met before its marker
        # on replay.
        invoices = workflow.patched(E_INVOICE)
        if workflow.patched(INSURANCE_AT_PAYMENT) and await db(
            InsurancePayActivities.insurance_presented, bill.bill_id
        ):
            await self._settle_insurance(bill)
        what = _WHAT.get(bill.kind.value, bill.description)
        if self._state.insurance is not None and self._state.channel_fen == 0:
            # 医保 paid it all: nothing to order at a channel, and the bill's details are where the patient goes.
            self._state.pay_url = bill_link(bill.bill_id)
            self._notice = PaymentNotice(
                out_trade_no=bill.bill_id,
                status=ChannelOrderStatus.SUCCESS,
                amount_fen=0,
                transaction_id=self._state.insurance.setl_id,
                paid_at=workflow.now(),
            )
            await self._tell_parent()
        else:
            await self._open_at_channel(bill, what)

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
            if invoices:
                await workflow.start_child_workflow(
                    InvoiceWorkflow.run,
                    InvoiceTask(bill_id=bill.bill_id, patient_id=bill.patient_id),
                    id=invoice_workflow_id(bill.bill_id),
                    parent_close_policy=ParentClosePolicy.ABANDON,
                )
            self._notices.send(
                "paid",
                f"patient:{bill.patient_id}",
                "bill_paid",
                what=what,
                amount=yuan(bill.amount_fen),
                bill_id=bill.bill_id,
                split=self._split_text(),
                link=bill_link(bill.bill_id),
            )
        else:
            self._state.status = BillStatus.CLOSED
            await db(BillingActivities.record_bill, bill, self._state)
            if self._state.insurance is not None:
                await self._release_insurance("订单未支付，已关闭")
            if not self._cancel_requested:
                self._notices.send("closed", f"patient:{bill.patient_id}", "bill_closed", what=what)

        await self._notices.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _open_at_channel(self, bill: BillInput, what: str) -> None:
        """Order what the patient pays at the channel, tell the parent where to pay, and wait for the payment."""
        ordered = (
            bill if self._state.insurance is None else bill.model_copy(update={"amount_fen": self._state.channel_fen})
        )
        order: ChannelOrder = await call(BillingActivities.create_channel_order, ordered)
        self._state.pay_url = order.pay_url
        self._state.campus = order.campus
        self._state.pay_deadline = workflow.now() + timedelta(seconds=bill.pay_window_s)
        await db(BillingActivities.record_bill, bill, self._state)
        await self._tell_parent()
        self._notices.send(
            "opened",
            f"patient:{bill.patient_id}",
            "bill_opened",
            what=what,
            amount=yuan(self._state.channel_fen),
            deadline=local(self._state.pay_deadline, "%H:%M"),
            split=self._split_text(),
        )
        try:
            await workflow.wait_condition(
                lambda: self._notice is not None or self._cancel_requested,
                timeout=timedelta(seconds=bill.pay_window_s),
            )
        except TimeoutError:
            pass

    async def _settle_insurance(self, bill: BillInput) -> None:
        """Settle the bill at the 医保 platform. A settlement whose answer never came is reversed (2601) and tried
        again; one that cannot be made leaves the bill self-pay in full, with what the platform held withdrawn."""
        refused = "医保结算未成功"
        for attempt in range(SETTLE_ATTEMPTS):
            request = InsuranceSettleRequest(
                bill_id=bill.bill_id,
                kind=bill.kind,
                ref_id=bill.ref_id,
                patient_id=bill.patient_id,
                amount_fen=bill.amount_fen,
                attempt=attempt,
                requested_at=workflow.now(),
            )
            try:
                self._state.insurance = await workflow.execute_activity_method(
                    InsurancePayActivities.settle_bill_insurance,
                    request,
                    task_queue=integration_queue(),
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=INSURANCE_RETRY,
                )
                return
            except ActivityError as failure:
                code, refused = _refusal(failure, refused)
                if code != "SETTLEMENT_UNKNOWN":
                    break
                await call(InsurancePayActivities.reverse_unknown_settlement, request)
        await self._release_insurance(refused, cancel_visit=True)
        self._state.insurance_refused = refused
        self._notices.send("insurance-refused", f"patient:{bill.patient_id}", "insurance_not_used", reason=refused)

    async def _release_insurance(self, reason: str, *, cancel_visit: bool = True) -> None:
        release = InsuranceRelease(
            bill_id=self._bill.bill_id, requested_at=workflow.now(), reason=reason, cancel_visit=cancel_visit
        )
        await call(InsurancePayActivities.release_bill_insurance, release)

    def _split_text(self) -> str:
        """How the bill is paid, for the patient's notices: empty for a bill paid by the patient alone."""
        share = self._state.insurance
        if share is None:
            return ""
        split = share.split
        return (
            f"（合计{yuan(split.total_fen)}元：医保统筹基金支付{yuan(split.fund_fen)}元，"
            f"个人账户支付{yuan(split.account_fen)}元，个人自付{yuan(self._state.channel_fen)}元）"
        )

    async def _tell_parent(self) -> None:
        parent = workflow.info().parent
        if parent is not None:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(BILL_OPENED_SIGNAL, self._state)

    @workflow.signal
    def payment_notice(self, notice: PaymentNotice) -> None:
        """The channel's verified callback. Notices for another order or amount are ignored (and logged)."""
        if notice.out_trade_no != self._bill.bill_id or notice.amount_fen != self._state.channel_fen:
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


def _refusal(failure: ActivityError, fallback: str) -> tuple[str, str]:
    """The code and zh-CN message of a failed step's business refusal (a timeout or exhausted retries: none)."""
    cause = failure.cause
    if isinstance(cause, ApplicationError) and cause.type and cause.non_retryable:
        return cause.type, cause.message
    return "", fallback

"""Bill (8.4.1): one payable order at a channel. Child of the flow that owes the money.

When the patient presented a 医保 credential for the bill, the 医保 platform settles it first (pooled fund, personal
account, cash: to the fen) and only the cash part is ordered at the channel. Then the bill opens the order at the
merchant the settings pick, tells its parent where to pay, and waits for the channel's notice. When the payment
window passes it closes the order at the channel; if the channel says the order was paid meanwhile (a lost or late
callback), the bill is paid after all. A bill that closes unpaid gives its 医保 settlement back (2208). A paid bill
gets its e-invoice from a flow of its own. The parent gets the final state as the child's result.

On the mobile path (医保移动支付, `InsurancePath.MOBILE`: the patient pays with 医保 in the app) nothing can be settled
before the patient authorizes the payment on the 医保 platform: the bill first tells its parent where to authorize
and waits, within the payment window, for the platform's report of that authorization (a callback the API keeps and
signals here as `insurance_authorized`). The fee then goes up as a mobile order (6201) and 6202 settles it; a 6202
whose answer never came is asked about (6301) when the platform's settlement notice arrives (`insurance_notice`) or
at each poll. Unauthorized by the deadline, the bill closes with nothing held anywhere. The self-pay part is ordered
at the channel as on the in-hospital path, with a payment window of its own (the patient who authorized late still
has the whole window to pay the rest).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
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
        InsurancePath,
        InsuranceRelease,
        InsuranceSettleRequest,
        PaymentNotice,
    )
    from models.invoice import InvoiceTask
    from workflows.insurance_steps import InsuranceSettler
    from workflows.invoice import InvoiceWorkflow, bill_link, invoice_workflow_id
    from workflows.steps import Notices, call, db, local, yuan


BILL_OPENED_SIGNAL = "bill_opened"
# Flows from before these patches neither settled 医保 nor had e-invoices issued.
INSURANCE_AT_PAYMENT = "insurance-at-payment"
E_INVOICE = "e-invoice"
# Flows from before this patch knew one 医保 path only (`insurance_presented`, then 2207).
MOBILE_INSURANCE = "insurance-mobile"
# A mobile order whose 6202 went unanswered is asked about about twenty times across the payment window, at most
# every half minute, unless the platform's notice comes first.
MOBILE_POLL_MAX = timedelta(seconds=30)

_WHAT = {"registration": "挂号费", "prescription": "处方药费"}


def bill_workflow_id(bill_id: str) -> str:
    return f"bill-{bill_id}"


def insurance_authorization_link(bill_id: str) -> str:
    """Where the app takes the patient to authorize paying a bill with 医保 (医保移动支付): its page for the bill,
    which opens the 医保 platform's authorization (医保电子凭证) with the bill as the order to pay."""
    return f"{bill_link(bill_id)}/insurance-authorization"


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
        self._authorized = False
        window = timedelta(seconds=bill.pay_window_s)
        self._settler = InsuranceSettler(
            poll=max(timedelta(seconds=1), min(MOBILE_POLL_MAX, window / 20)), patience=window
        )

    @workflow.run
    async def run(self, bill: BillInput) -> BillState:
        # Every patch is asked before any step: one asked right after a local activity can be met before its marker
        # on replay.
        invoices = workflow.patched(E_INVOICE)
        two_paths = workflow.patched(MOBILE_INSURANCE)
        path: InsurancePath | None = None
        if workflow.patched(INSURANCE_AT_PAYMENT):
            if two_paths:
                path = await db(InsurancePayActivities.insurance_path, bill.bill_id)
            elif await db(InsurancePayActivities.insurance_presented, bill.bill_id):
                path = InsurancePath.HOSPITAL
        # Unauthorized, a mobile-path bill has nothing at the platform nor at the channel: it just closes.
        authorized = path is not InsurancePath.MOBILE or await self._authorization(bill)
        if path is not None and authorized:
            await self._settle_insurance(bill, mobile=path is InsurancePath.MOBILE)
        what = _WHAT.get(bill.kind.value, bill.description)
        if authorized and self._state.insurance is not None and self._state.channel_fen == 0:
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
        elif authorized:
            await self._open_at_channel(bill, what)

        if self._notice is None and authorized:
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

    async def _authorization(self, bill: BillInput) -> bool:
        """Tell the parent where the patient authorizes paying with 医保, and wait for the platform's report of it
        within the payment window. True once authorized (and not cancelled meanwhile)."""
        self._state.pay_url = insurance_authorization_link(bill.bill_id)
        self._state.pay_deadline = workflow.now() + timedelta(seconds=bill.pay_window_s)
        self._state.awaiting_insurance_authorization = True
        await db(BillingActivities.record_bill, bill, self._state)
        await self._tell_parent()
        try:
            await workflow.wait_condition(
                lambda: self._authorized or self._cancel_requested, timeout=timedelta(seconds=bill.pay_window_s)
            )
        except TimeoutError:
            pass
        self._state.awaiting_insurance_authorization = False
        return self._authorized and not self._cancel_requested

    async def _settle_insurance(self, bill: BillInput, *, mobile: bool = False) -> None:
        """Settle the bill at the 医保 platform (`InsuranceSettler`); one that cannot be settled leaves the bill
        self-pay in full, with what the platform held withdrawn."""

        request = InsuranceSettleRequest(
            bill_id=bill.bill_id,
            kind=bill.kind,
            ref_id=bill.ref_id,
            patient_id=bill.patient_id,
            amount_fen=bill.amount_fen,
            requested_at=workflow.now(),
        )
        self._state.insurance, refused = await self._settler.settle(request, mobile=mobile)
        if self._state.insurance is not None:
            return
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

    @workflow.signal
    def insurance_authorized(self) -> None:
        """The 医保 platform reported the patient's payment authorization for this bill (the API verified it, checked it
        is the patient's own and keeps it encrypted: it never travels in the flow's history)."""
        self._authorized = True

    @workflow.signal
    def insurance_notice(self, pay_ord_id: str) -> None:
        """The platform's settlement notice for the bill's mobile order: only a hint to ask 6301 now."""
        self._settler.notified = True

    @workflow.query
    def state(self) -> BillState:
        return self._state

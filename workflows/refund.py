"""Refund (8.4.2): always back along the original path, never more than was paid, never twice.

The amount is claimed against the bill in PostgreSQL before anything is asked (activities/billing.py): a bill's 医保
part goes back through the 医保 platform (2208 cancels the settlement, whole), the rest along the channel the patient
paid with, the refund id being the channel call's idempotency key. A refund still processing at the channel is polled
until it settles. The patient is told when to expect the money, per channel (settings), and a refund that returns
everything left of the bill has the bill's e-invoice reversed in red.

A special refund (after the medicine left the pharmacy) first records the negotiation of the hospital, the supplier
and the courier (each party's answer and what it bears, in fen); the hospital concludes it, and the agreed sum is
what is refunded, or nothing when the hospital refuses.

A partial refund beyond a 医保 bill's self-pay part (`RefundPlan.resettle`) cannot take part of the settlement: the
医保 rules give a settlement back only whole. So the whole settlement goes back (2208, or 6203 on the mobile path),
what remains of the bill is settled anew (a new batch, 2204/2207 or 6201/6202, under this flow's own keys), and the
channel returns the self-pay difference: the cash paid less the new settlement's cash part. The patient gets back
exactly the amount asked for (the 医保 difference plus the cash difference); the channel never returns more than it
took. Should the platform refuse the new settlement, what remains is self-pay.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from activities.insurance_pay import InsurancePayActivities
    from models.billing import (
        ChannelRefund,
        ConcludeNegotiation,
        InsurancePath,
        InsuranceRelease,
        InsuranceSettleRequest,
        NegotiationEntry,
        NegotiationParty,
        RefundInput,
        RefundKind,
        RefundPlan,
        RefundResult,
        RefundStatus,
    )
    from models.invoice import InvoiceTask
    from workflows.insurance_steps import InsuranceSettler
    from workflows.invoice import InvoiceWorkflow, invoice_workflow_id
    from workflows.steps import Notices, call, db, yuan


POLL_INTERVAL = timedelta(minutes=1)
# What patients were told to expect before the expected arrival came from the settings (flows before SPLIT_REFUNDS).
ARRIVAL_ETA = {"sandbox": "即时到账", "wechat": "预计1-3个工作日到账", "alipay": "预计1-3个工作日到账"}
# Refunds from before this patch went back through the channel only, with no 医保 part, kinds or e-invoices.
SPLIT_REFUNDS = "split-refunds"
# Refunds from before this patch never re-settled a bill (a partial refund stayed within the self-pay part).
RESETTLE_REFUNDS = "resettle-refunds"
# A re-settlement's mobile order whose 6202 went unanswered is asked about (6301) this often, for this long.
RESETTLE_POLL = timedelta(seconds=15)
RESETTLE_PATIENCE = timedelta(minutes=30)


def refund_workflow_id(bill_id: str, sequence: int | str) -> str:
    return f"refund-{bill_id}-{sequence}"


@workflow.defn(name="Refund")
class RefundWorkflow:
    @workflow.init
    def __init__(self, refund: RefundInput) -> None:
        self._notices = Notices()
        self._refund = refund
        self._result = RefundResult(
            refund_id=refund.refund_id,
            bill_id=refund.bill_id,
            amount_fen=refund.amount_fen,
            status=RefundStatus.PROCESSING,
            kind=refund.kind,
        )
        self._settled: ChannelRefund | None = None
        self._answers: dict[NegotiationParty, NegotiationEntry] = {}
        self._conclusion: ConcludeNegotiation | None = None
        self._lock = asyncio.Lock()

    @workflow.run
    async def run(self, refund: RefundInput) -> RefundResult:
        # Both patches are asked before any step.
        resettling = workflow.patched(RESETTLE_REFUNDS)
        if not workflow.patched(SPLIT_REFUNDS):
            return await self._channel_only(refund)
        if refund.kind is RefundKind.SPECIAL and not await self._negotiated(refund):
            return await self._end()
        try:
            plan: RefundPlan = await db(BillingActivities.claim_refund, self._refund)
        except (ActivityError, ApplicationError) as failure:
            # Nothing was claimed (already refunded, or a part of a 医保 settlement that goes back only whole): nothing
            # goes back; the caller hears why, and finance sees it.
            self._result.status = RefundStatus.FAILED
            self._result.failure = _message(failure, "退款申请未被受理")
            self._tell_finance()
            return await self._end()
        self._result.channel_fen = plan.channel_fen
        patient = f"patient:{refund.patient_id}"
        self._notices.send("started", patient, "refund_started", amount=yuan(self._result.amount_fen), eta=plan.eta)
        if resettling and plan.resettle is not None:
            return await self._resettle(plan)
        if plan.insurance is not None:
            release = InsuranceRelease(bill_id=refund.bill_id, requested_at=workflow.now(), reason=refund.reason)
            try:
                await call(InsurancePayActivities.release_bill_insurance, release)
            except ActivityError as failure:
                return await self._failed(_message(failure, "医保退费未成功"))
            self._result.insurance_fen = plan.insurance.total_fen - plan.insurance.cash_fen
        if plan.channel_fen:
            outcome = await self._through_channel(self._refund.model_copy(update={"amount_fen": plan.channel_fen}))
            self._result.channel_refund_id = outcome.refund_id
            if outcome.status is not RefundStatus.SUCCEEDED:
                return await self._failed("支付渠道退款未成功")
        self._result.status = RefundStatus.SUCCEEDED
        await db(BillingActivities.finish_refund, self._result)
        if plan.final:
            await workflow.start_child_workflow(
                InvoiceWorkflow.run,
                InvoiceTask(bill_id=refund.bill_id, patient_id=refund.patient_id, reverse=True, reason=refund.reason),
                id=invoice_workflow_id(refund.bill_id, reverse=True),
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        self._notices.send("done", patient, "refund_done", amount=yuan(self._result.amount_fen))
        return await self._end()

    async def _resettle(self, plan: RefundPlan) -> RefundResult:
        """Give the settlement back whole, settle what remains, return the self-pay difference through the channel."""
        refund, held = self._refund, plan.resettle
        assert held is not None
        self._result.resettle = True
        self._result.channel_fen = 0
        release = InsuranceRelease(bill_id=refund.bill_id, requested_at=workflow.now(), reason=refund.reason)
        try:
            await call(InsurancePayActivities.release_bill_insurance, release)
        except ActivityError as failure:
            # Nothing went back: the claim is given back whole and the refund can be asked for again.
            return await self._failed(_message(failure, "医保退费未成功"))

        request = InsuranceSettleRequest(
            bill_id=refund.bill_id,
            kind=held.kind,
            ref_id=held.ref_id,
            patient_id=refund.patient_id,
            amount_fen=held.remaining_fen,
            requested_at=workflow.now(),
        )
        settler = InsuranceSettler(poll=RESETTLE_POLL, patience=RESETTLE_PATIENCE)
        share, refused = await settler.settle(request, mobile=held.path is InsurancePath.MOBILE)
        if share is None:
            # The platform would not settle the rest: it is self-pay now, and nothing of it stays at the platform.
            workflow.logger.warning("re-settlement refused", extra={"bill_id": refund.bill_id, "reason": refused})
            await call(
                InsurancePayActivities.release_bill_insurance,
                release.model_copy(update={"requested_at": workflow.now(), "cancel_visit": True}),
            )
        cash_owed = held.remaining_fen if share is None else share.split.cash_fen
        self._result.insurance_fen = held.insurance_held_fen - (0 if share is None else share.covered_fen)
        channel_fen = held.cash_held_fen - cash_owed
        if channel_fen < 0:
            # The remaining items cost the patient more cash than they paid: nothing is charged again, and the
            # difference is finance's to settle with the patient.
            return await self._failed(f"重新结算后个人自付{yuan(cash_owed)}元超过已付自付{yuan(held.cash_held_fen)}元")
        if channel_fen:
            outcome = await self._through_channel(refund.model_copy(update={"amount_fen": channel_fen}))
            self._result.channel_refund_id = outcome.refund_id
            if outcome.status is not RefundStatus.SUCCEEDED:
                return await self._failed("支付渠道退款未成功")
            self._result.channel_fen = channel_fen
        self._result.status = RefundStatus.SUCCEEDED
        await db(BillingActivities.finish_refund, self._result)
        self._notices.send("done", f"patient:{refund.patient_id}", "refund_done", amount=yuan(self._result.amount_fen))
        return await self._end()

    async def _through_channel(self, refund: RefundInput) -> ChannelRefund:
        outcome: ChannelRefund = await call(BillingActivities.request_channel_refund, refund)
        while outcome.status is RefundStatus.PROCESSING and self._settled is None:
            try:
                await workflow.wait_condition(lambda: self._settled is not None, timeout=POLL_INTERVAL)
            except TimeoutError:
                outcome = await call(BillingActivities.query_channel_refund, refund.refund_id)
        return self._settled or outcome

    async def _negotiated(self, refund: RefundInput) -> bool:
        """Record the parties' answers until the hospital concludes; True when it approved a refund of their sum."""
        await db(BillingActivities.open_special_refund, refund)
        self._result.status = RefundStatus.NEGOTIATING
        self._notices.send(
            "negotiation", "role:admin", "special_refund_opened", bill_id=refund.bill_id, reason=refund.reason
        )
        await workflow.wait_condition(lambda: self._conclusion is not None and not self._lock.locked())
        conclusion = self._conclusion
        if conclusion is None or not conclusion.approve:
            self._result.status = RefundStatus.REJECTED
            self._result.failure = conclusion.note if conclusion else None
            await db(BillingActivities.finish_refund, self._result)
            self._notices.send(
                "rejected", f"patient:{refund.patient_id}", "refund_rejected", reason=self._result.failure or ""
            )
            return False
        agreed = _agreed_sum(self._answers)
        self._refund = refund.model_copy(update={"amount_fen": agreed, "authorized_by": conclusion.concluded_by})
        self._result.amount_fen = agreed
        self._result.status = RefundStatus.PROCESSING
        return True

    async def _failed(self, failure: str) -> RefundResult:
        self._result.status = RefundStatus.FAILED
        self._result.failure = failure
        await db(BillingActivities.finish_refund, self._result)
        amount = yuan(self._result.amount_fen)
        patient = f"patient:{self._refund.patient_id}"
        self._notices.send("failed", patient, "refund_failed", amount=amount, reason=failure)
        self._tell_finance()
        return await self._end()

    def _tell_finance(self) -> None:
        self._notices.send(
            "failed-finance",
            "role:finance",
            "refund_failed_finance",
            refund_id=self._refund.refund_id,
            amount=yuan(self._result.amount_fen),
            reason=self._result.failure or "",
        )

    async def _end(self) -> RefundResult:
        await self._notices.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result

    async def _channel_only(self, refund: RefundInput) -> RefundResult:
        """Flows from before SPLIT_REFUNDS, unchanged."""
        await db(BillingActivities.reserve_refund, refund)
        patient = f"patient:{refund.patient_id}"
        self._notices.send(
            "started",
            patient,
            "refund_started",
            amount=yuan(refund.amount_fen),
            eta=ARRIVAL_ETA.get(refund.channel, "预计1-7个工作日到账"),
        )
        outcome = await self._through_channel(refund)
        self._result.status = outcome.status
        self._result.channel_refund_id = outcome.refund_id
        await db(BillingActivities.finish_refund, self._result)
        if outcome.status is RefundStatus.SUCCEEDED:
            self._notices.send("done", patient, "refund_done", amount=yuan(refund.amount_fen))
        await self._notices.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result

    # --- messages ---

    @workflow.signal
    def refund_notice(self, notice: ChannelRefund) -> None:
        if notice.out_refund_no == self._result.refund_id and notice.status is not RefundStatus.PROCESSING:
            self._settled = notice

    @workflow.update
    async def record_negotiation(self, entry: NegotiationEntry) -> RefundResult:
        """One party's answer (the latest answer of a party is the one that counts; every answer is kept)."""
        async with self._lock:
            await db(BillingActivities.record_negotiation, self._refund.refund_id, entry)
            self._answers[entry.party] = entry
            self._result.negotiation = [*self._result.negotiation, entry]
        return self._result

    @record_negotiation.validator
    def _validate_negotiation(self, entry: NegotiationEntry) -> None:
        self._require_negotiating()
        if entry.amount_fen > self._refund.amount_fen:
            raise ApplicationError(
                f"承担金额不能超过患者申请的退款金额{yuan(self._refund.amount_fen)}元", type="NEGOTIATION_AMOUNT"
            )
        if not entry.agreed and entry.amount_fen:
            raise ApplicationError("未同意的一方不承担金额", type="NEGOTIATION_AMOUNT")

    @workflow.update
    async def conclude_negotiation(self, conclusion: ConcludeNegotiation) -> RefundResult:
        self._conclusion = conclusion
        await workflow.wait_condition(lambda: self._result.status is not RefundStatus.NEGOTIATING)
        return self._result

    @conclude_negotiation.validator
    def _validate_conclusion(self, conclusion: ConcludeNegotiation) -> None:
        self._require_negotiating()
        if not conclusion.approve:
            if not conclusion.note.strip():
                raise ApplicationError("拒绝特殊退款须说明理由", type="REASON_REQUIRED")
            return
        missing = [party.value for party in NegotiationParty if party not in self._answers]
        if missing:
            raise ApplicationError(f"尚未记录以下各方的协商意见：{'、'.join(missing)}", type="NEGOTIATION_INCOMPLETE")
        agreed = _agreed_sum(self._answers)
        if agreed <= 0:
            raise ApplicationError("各方同意承担的金额合计为零，不能按同意退款办结", type="NEGOTIATION_AMOUNT")
        if agreed > self._refund.amount_fen:
            raise ApplicationError(
                f"各方承担合计{yuan(agreed)}元，超过患者申请的{yuan(self._refund.amount_fen)}元",
                type="NEGOTIATION_AMOUNT",
            )

    def _require_negotiating(self) -> None:
        if self._refund.kind is not RefundKind.SPECIAL:
            raise ApplicationError("只有特殊退款需要协商", type="NOT_A_SPECIAL_REFUND")
        if self._result.status is not RefundStatus.NEGOTIATING or self._conclusion is not None:
            raise ApplicationError("协商已结束或尚未开始", type="NEGOTIATION_CLOSED")

    @workflow.query
    def result(self) -> RefundResult:
        return self._result


def _agreed_sum(answers: dict[NegotiationParty, NegotiationEntry]) -> int:
    return sum(entry.amount_fen for entry in answers.values() if entry.agreed)


def _message(failure: ActivityError | ApplicationError, fallback: str) -> str:
    """The zh-CN message of a step's business refusal. A local activity's refusal arrives as the `ApplicationError`
    itself, a regular activity's wrapped in an `ActivityError`; anything else gets `fallback`."""
    cause = failure if isinstance(failure, ApplicationError) else failure.cause
    return cause.message if isinstance(cause, ApplicationError) and cause.non_retryable else fallback

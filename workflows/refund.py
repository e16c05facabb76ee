"""Refund (8.4.2): always back along the original path, never more than was paid, never twice.

The amount is claimed against the bill in PostgreSQL before the channel is asked; the channel call carries the
refund id as its idempotency key. A refund still processing at the channel is polled until it settles.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from models.billing import ChannelRefund, RefundInput, RefundResult, RefundStatus
    from workflows.steps import Notices, call, db, yuan


POLL_INTERVAL = timedelta(minutes=1)
# What patients are told to expect, per channel (8.4.2: 退款到账时间提示).
ARRIVAL_ETA = {"sandbox": "即时", "wechat": "1-3个工作日", "alipay": "1-3个工作日"}


def refund_workflow_id(bill_id: str, sequence: int) -> str:
    return f"refund-{bill_id}-{sequence}"


@workflow.defn(name="Refund")
class RefundWorkflow:
    @workflow.init
    def __init__(self, refund: RefundInput) -> None:
        self._notices = Notices()
        self._result = RefundResult(
            refund_id=refund.refund_id,
            bill_id=refund.bill_id,
            amount_fen=refund.amount_fen,
            status=RefundStatus.PROCESSING,
        )
        self._settled: ChannelRefund | None = None

    @workflow.run
    async def run(self, refund: RefundInput) -> RefundResult:
        await db(BillingActivities.reserve_refund, refund)
        patient = f"patient:{refund.patient_id}"
        self._notices.send(
            "started",
            patient,
            "refund_started",
            amount=yuan(refund.amount_fen),
            eta=ARRIVAL_ETA.get(refund.channel, "1-7个工作日"),
        )
        outcome: ChannelRefund = await call(BillingActivities.request_channel_refund, refund)
        while outcome.status is RefundStatus.PROCESSING and self._settled is None:
            try:
                await workflow.wait_condition(lambda: self._settled is not None, timeout=POLL_INTERVAL)
            except TimeoutError:
                outcome = await call(BillingActivities.query_channel_refund, refund.refund_id)
        if self._settled is not None:
            outcome = self._settled
        self._result.status = outcome.status
        self._result.channel_refund_id = outcome.refund_id
        await db(BillingActivities.finish_refund, self._result)
        if outcome.status is RefundStatus.SUCCEEDED:
            self._notices.send("done", patient, "refund_done", amount=yuan(refund.amount_fen))
        await self._notices.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result

    @workflow.signal
    def refund_notice(self, notice: ChannelRefund) -> None:
        if notice.out_refund_no == self._result.refund_id and notice.status is not RefundStatus.PROCESSING:
            self._settled = notice

    @workflow.query
    def result(self) -> RefundResult:
        return self._result

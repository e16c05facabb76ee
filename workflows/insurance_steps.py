"""Settling a bill at the 医保 platform, for the flows that do it: the Bill at payment, and a Refund that re-settles
what remains of a bill after a partial refund beyond the self-pay part.

A settling message whose answer never came is never blindly resent. On the in-hospital path (2207) it is reversed
(2601) and the next attempt settles under its own key. On the mobile path (6202) the platform is asked what became of
the order (6301): as soon as the platform's settlement notice arrives (a callback the API signals to the flow, which
sets `notified`), or after a poll interval when none comes; an order never settled is paid again under the next
attempt's key, one still being settled is asked about again until the flow's patience runs out.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.insurance_pay import InsurancePayActivities
    from models.billing import InsuranceSettleRequest, InsuranceShare, MobileSettlementCheck, MobileSettlementState
    from workflows.steps import call, integration_queue

# Settling messages per bill: a settlement whose answer never came is reversed (2601) and sent again as the next.
SETTLE_ATTEMPTS = 3
# The patient waits for the split before paying: a 医保 platform that keeps failing falls back to self-pay.
INSURANCE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=20), maximum_attempts=5
)
UNSETTLED = "医保结算未成功"


class InsuranceSettler:
    """Settles one bill, attempt by attempt. `notified` is set by the owning flow's settlement-notice signal."""

    def __init__(self, *, poll: timedelta, patience: timedelta) -> None:
        self.notified = False
        self._poll = poll
        self._patience = patience

    async def settle(self, bill: InsuranceSettleRequest, *, mobile: bool) -> tuple[InsuranceShare | None, str]:
        """The settled share of `bill`, or None and why the platform would not settle it (the caller then releases
        what the platform holds). Each attempt asks at the flow's time of asking, so its retries send one message."""
        refused = UNSETTLED
        for attempt in range(SETTLE_ATTEMPTS):
            request = bill.model_copy(update={"attempt": attempt, "requested_at": workflow.now()})
            try:
                share: InsuranceShare = await workflow.execute_activity_method(
                    InsurancePayActivities.settle_bill_insurance,
                    request,
                    task_queue=integration_queue(),
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=INSURANCE_RETRY,
                )
                return share, ""
            except ActivityError as failure:
                code, refused = business_refusal(failure, refused)
                if code != "SETTLEMENT_UNKNOWN":
                    break
                if not mobile:
                    await call(InsurancePayActivities.reverse_unknown_settlement, request)
                    continue
                check = await self._ask(request)
                if check.share is not None:
                    return check.share, ""
                if check.state is not MobileSettlementState.UNPAID:
                    refused = "医保移动支付订单未能结算"
                    break
        return None, refused

    async def _ask(self, request: InsuranceSettleRequest) -> MobileSettlementCheck:
        """6301 until the order is settled or known never to have been: at the settlement notice, else each poll."""
        deadline = workflow.now() + self._patience
        while True:
            try:
                await workflow.wait_condition(lambda: self.notified, timeout=self._poll)
            except TimeoutError:
                pass
            self.notified = False
            check: MobileSettlementCheck = await call(InsurancePayActivities.check_mobile_settlement, request)
            if check.state is not MobileSettlementState.PROCESSING or workflow.now() >= deadline:
                return check


def business_refusal(failure: ActivityError, fallback: str) -> tuple[str, str]:
    """The code and zh-CN message of a failed step's business refusal (a timeout or exhausted retries: none)."""
    cause = failure.cause
    if isinstance(cause, ApplicationError) and cause.type and cause.non_retryable:
        return cause.type, cause.message
    return "", fallback

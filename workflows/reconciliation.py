"""Reconciliation (对账, 8.4.3): one channel, one Beijing-time day (of one campus, where campuses are reconciled
apart).

Downloads the channel's statement (retried on a durable timer until the channel has made it), matches it against
the platform's records in PostgreSQL, and sends finance the day's result (8.4.3.4): a balanced day as such; when
anything differs, the differences, marked as an alert, and then waits until every difference is resolved
(`resolve`, an Update finance staff send one item at a time). `rerun` replaces the current round with a fresh
download and match; the old run is kept as superseded. 医保 is reconciled the same way under the channel
`insurance`, with 3201/3202 in place of a statement.

The daily Schedule cannot compute "yesterday", and the workflows it starts get ids with the schedule time appended.
So it starts `DailyReconciliation`, which takes yesterday from its own `workflow.now()` (the Schedule's catch-up
window keeps a late start within the same Beijing day) and starts `Reconciliation` under the business id
`reconcile-{channel}[-{campus}]-{yyyymmdd}` as an abandoned child, then ends. The Schedule's overlap policy (skip)
thus only concerns the launcher, and a day that waits for finance never holds up the next day's run.

After each match the flow totals the bad debts still open across every channel and campus (短款 not yet recovered)
and, above the configured threshold, alerts finance and the admins once that day.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.reconciliation import STATEMENT_NOT_READY, ReconciliationActivities
    from models.common import HOSPITAL_TZ
    from models.reconciliation import (
        INSURANCE_CHANNEL,
        BadDebtExposure,
        DailyReconcileInput,
        FinishRun,
        InsuranceCheckRequest,
        MatchSummary,
        OpenRun,
        ReconcileInput,
        ReconciliationStage,
        ReconciliationState,
        RecordResolution,
        RerunRequest,
        ResolutionResult,
        ResolveItem,
        RunStatus,
        StatementRequest,
    )
    from workflows.steps import DB_RETRY, Notices, integration_queue, yuan


# The finance staff authorized to see reconciliation (8.4.3.4): a finance user an admin took the permission from is
# told nothing.
FINANCE = "role:finance/reconciliation.read"
CHANNEL_NAMES = {"sandbox": "沙箱支付", "wechatpay": "微信支付", "alipay": "支付宝", INSURANCE_CHANNEL: "医保"}
# A few quick retries for a flaky connection; after that the statement is asked for again on the durable timer.
_FETCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=4,
)
# Matching a busy day is one statement over many rows; allow it more than a single-row step.
_MATCH_TIMEOUT = timedelta(minutes=5)


# Flows started before the bad-debt check existed run on without it (see tests/histories).
BAD_DEBT_PATCH = "reconciliation-bad-debt-alert"
# Flows started before finance got a balanced day's result too end such a day without telling anyone.
DAILY_RESULT_PATCH = "reconciliation-daily-result"


def _scope(channel: str, campus: str | None) -> str:
    return f"{channel}-{campus}" if campus else channel


def reconciliation_workflow_id(channel: str, bill_date: date, campus: str | None = None) -> str:
    return f"reconcile-{_scope(channel, campus)}-{bill_date:%Y%m%d}"


def daily_schedule_id(channel: str, campus: str | None = None) -> str:
    return f"reconcile-daily-{_scope(channel, campus)}"


@workflow.defn(name="Reconciliation")
class ReconciliationWorkflow:
    @workflow.init
    def __init__(self, request: ReconcileInput) -> None:
        self._request = request
        self._state = ReconciliationState(
            channel=request.channel,
            bill_date=request.bill_date,
            campus=request.campus,
            stage=ReconciliationStage.STARTED,
        )
        self._notices = Notices()
        # Differences of the current run still open, and those whose resolution is being written.
        self._open: set[int] = set()
        self._resolving: set[int] = set()
        self._rerun_by: str | None = None
        self._run_id = ""  # the current round's run (`reconciliation_runs.id`)

    @workflow.run
    async def run(self, request: ReconcileInput) -> ReconciliationState:
        # Asked before the first command, so it holds for every round of the flow.
        daily_result = workflow.patched(DAILY_RESULT_PATCH)
        while True:
            run_id = await self._open_round()
            summary = await self._reconcile(run_id)
            if summary is None:  # given up or failed; the run is closed and finance was told
                break
            self._state.summary = summary
            if workflow.patched(BAD_DEBT_PATCH):
                await self._check_bad_debts()
            self._open = set(summary.open_item_ids)
            self._state.open_items = len(self._open)
            if not self._open:
                await self._finish(RunStatus.BALANCED)
                if daily_result:
                    self._tell_finance("balanced", "reconciliation_balanced", **self._figures(summary))
                break
            self._state.stage = ReconciliationStage.AWAITING_RESOLUTION
            self._tell_finance("mismatch", "reconciliation_mismatch", **self._figures(summary))
            await self._until_resolved()
            if self._rerun_by is None:
                await self._finish(RunStatus.RESOLVED)
                break
            await self._finish(RunStatus.SUPERSEDED, f"{self._rerun_by} 发起重新对账")
            self._rerun_by = None
        await self._notices.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _open_round(self) -> str:
        self._state.round += 1
        self._state.summary = None
        self._state.open_items = 0
        self._state.download_attempts = 0
        self._state.last_error = None
        self._open = set()
        info = workflow.info()
        opened = OpenRun(
            channel=self._request.channel,
            bill_date=self._request.bill_date,
            workflow_id=info.workflow_id,
            workflow_run_id=info.run_id,
            round=self._state.round,
            campus=self._request.campus,
        )
        self._run_id = await self._local(ReconciliationActivities.open_run, opened)
        self._state.run_id = self._run_id
        return self._run_id

    async def _reconcile(self, run_id: str) -> MatchSummary | None:
        """Fetch and match until it works, the channel refuses for good, or waiting is given up."""
        request = self._request
        give_up_at = workflow.now() + timedelta(seconds=request.give_up_after_s)
        # 3202 is keyed per round: a retry resends the same messages, a re-run sends new ones.
        requested_at = workflow.now()
        while True:
            self._state.download_attempts += 1
            self._state.stage = ReconciliationStage.DOWNLOADING
            try:
                if request.channel == INSURANCE_CHANNEL:
                    check = InsuranceCheckRequest(
                        run_id=run_id,
                        bill_date=request.bill_date,
                        idempotency_key=f"{workflow.info().workflow_id}:{self._state.round}:3202",
                        requested_at=requested_at,
                    )
                    summary: MatchSummary = await self._fetch(ReconciliationActivities.check_insurance, check)
                    return summary
                statement = StatementRequest(
                    run_id=run_id, channel=request.channel, bill_date=request.bill_date, campus=request.campus
                )
                await self._fetch(ReconciliationActivities.download_statement, statement)
                self._state.stage = ReconciliationStage.MATCHING
                summary = await workflow.execute_local_activity_method(
                    ReconciliationActivities.match_statement,
                    run_id,
                    start_to_close_timeout=_MATCH_TIMEOUT,
                    retry_policy=DB_RETRY,
                )
                return summary
            except ActivityError as failure:
                cause = failure.cause
                reason = cause.message if isinstance(cause, ApplicationError) else str(failure)
                self._state.last_error = reason
                if isinstance(cause, ApplicationError) and cause.non_retryable and cause.type != STATEMENT_NOT_READY:
                    await self._finish(RunStatus.FAILED, reason)
                    self._state.stage = ReconciliationStage.FAILED
                    self._tell_finance("failed", "reconciliation_failed", **self._about(), reason=reason)
                    return None
            retry_every = timedelta(seconds=request.retry_every_s)
            if workflow.now() + retry_every > give_up_at:
                await self._finish(RunStatus.STATEMENT_UNAVAILABLE, self._state.last_error)
                self._state.stage = ReconciliationStage.STATEMENT_UNAVAILABLE
                hours = str(request.give_up_after_s // 3600)
                self._tell_finance("unavailable", "reconciliation_unavailable", **self._about(), hours=hours)
                return None
            # Not ready yet (or the channel keeps failing): ask again later, or at once when someone asks to re-run.
            self._state.stage = ReconciliationStage.WAITING_STATEMENT
            try:
                await workflow.wait_condition(lambda: self._rerun_by is not None, timeout=retry_every)
            except TimeoutError:
                pass
            self._rerun_by = None

    async def _until_resolved(self) -> None:
        reminders = 0
        while True:
            try:
                await workflow.wait_condition(
                    lambda: not self._open or self._rerun_by is not None,
                    timeout=timedelta(seconds=self._request.remind_every_s),
                )
                return
            except TimeoutError:
                reminders += 1
                self._tell_finance(f"remind-{reminders}", "reconciliation_reminder", **self._about())

    async def _check_bad_debts(self) -> None:
        exposure: BadDebtExposure = await workflow.execute_local_activity_method(
            ReconciliationActivities.bad_debt_exposure,
            start_to_close_timeout=timedelta(seconds=15),
            retry_policy=DB_RETRY,
        )
        if not exposure.over:
            return
        # One alert a day, whichever channel's or campus's flow gets there first.
        day = self._request.bill_date.isoformat()
        for recipient in exposure.alert:
            self._notices.send_once(
                f"reconciliation-bad-debt:{day}:{recipient}",
                recipient,
                "reconciliation_bad_debt",
                date=day,
                amount=yuan(exposure.open_shortfall_fen),
                count=str(exposure.open_items),
                threshold=yuan(exposure.threshold_fen),
            )

    async def _finish(self, status: RunStatus, note: str | None = None) -> None:
        await self._local(ReconciliationActivities.finish_run, FinishRun(run_id=self._run_id, status=status, note=note))
        if status in (RunStatus.BALANCED, RunStatus.RESOLVED):
            self._state.stage = ReconciliationStage.DONE

    async def _fetch(self, method: Any, arg: Any) -> Any:
        return await workflow.execute_activity_method(
            method,
            arg,
            task_queue=integration_queue(),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=_FETCH_RETRY,
        )

    @staticmethod
    async def _local(method: Any, arg: Any) -> Any:
        return await workflow.execute_local_activity_method(
            method, arg, start_to_close_timeout=timedelta(seconds=15), retry_policy=DB_RETRY
        )

    def _tell_finance(self, key: str, template: str, **params: str) -> None:
        self._notices.send(f"{self._run_id}:{key}", FINANCE, template, **params)

    def _about(self) -> dict[str, str]:
        channel = CHANNEL_NAMES.get(self._request.channel, self._request.channel)
        if self._request.campus:
            channel += f"（{self._request.campus_name or self._request.campus}）"
        return {
            "channel": channel,
            "date": self._request.bill_date.isoformat(),
            "run_id": self._run_id,
            "count": str(len(self._open)),
        }

    def _figures(self, summary: MatchSummary) -> dict[str, str]:
        return {
            **self._about(),
            "matched": str(summary.matched),
            "channel_only": str(summary.channel_only),
            "platform_only": str(summary.platform_only),
            "amount_mismatch": str(summary.amount_mismatch),
            "status_mismatch": str(summary.status_mismatch),
            "channel_paid": yuan(summary.channel_payment_fen),
            "channel_refunded": yuan(summary.channel_refund_fen),
            "platform_paid": yuan(summary.platform_payment_fen),
            "platform_refunded": yuan(summary.platform_refund_fen),
        }

    # --- finance ---

    @workflow.update
    async def resolve(self, request: ResolveItem) -> ResolutionResult:
        """Finance settles one difference of the current run (差错账处理)."""
        self._check_open(request.item_id)
        self._resolving.add(request.item_id)
        try:
            result: ResolutionResult = await self._local(
                ReconciliationActivities.record_resolution,
                RecordResolution(
                    run_id=self._run_id,
                    item_id=request.item_id,
                    resolution=request.resolution,
                    note=request.note,
                    resolved_by=request.resolved_by,
                    resolved_at=workflow.now(),
                ),
            )
        finally:
            self._resolving.discard(request.item_id)
        self._open.discard(request.item_id)
        self._state.open_items = len(self._open)
        return result

    @resolve.validator
    def _validate_resolve(self, request: ResolveItem) -> None:
        self._check_open(request.item_id)

    def _check_open(self, item_id: int) -> None:
        if self._state.stage is not ReconciliationStage.AWAITING_RESOLUTION:
            raise ApplicationError("该对账批次当前没有待处理的差错账", type="NOT_AWAITING_RESOLUTION")
        if item_id not in self._open or item_id in self._resolving:
            raise ApplicationError("该差错账不属于当前对账批次或已处理", type="ITEM_NOT_OPEN")

    @workflow.update
    def rerun(self, request: RerunRequest) -> ReconciliationState:
        """Download and match the day again: at once while waiting for the statement, or as a new run while
        waiting for finance (the current run is superseded; what was resolved in it stays on record)."""
        self._rerun_by = request.requested_by
        return self._state

    @rerun.validator
    def _validate_rerun(self, request: RerunRequest) -> None:
        waiting = (ReconciliationStage.WAITING_STATEMENT, ReconciliationStage.AWAITING_RESOLUTION)
        if self._state.stage not in waiting or self._rerun_by is not None:
            raise ApplicationError("该日对账正在下载或核对中，请稍后再试", type="RECONCILIATION_BUSY")

    @workflow.query
    def progress(self) -> ReconciliationState:
        return self._state


@workflow.defn(name="DailyReconciliation")
class DailyReconciliationWorkflow:
    """Started by the daily Schedule: reconciles yesterday (Beijing time) under its business id, then ends."""

    @workflow.run
    async def run(self, request: DailyReconcileInput) -> str:
        bill_date = workflow.now().astimezone(HOSPITAL_TZ).date() - timedelta(days=1)
        child_id = reconciliation_workflow_id(request.channel, bill_date, request.campus)
        try:
            await workflow.start_child_workflow(
                ReconciliationWorkflow.run,
                ReconcileInput(
                    channel=request.channel,
                    bill_date=bill_date,
                    campus=request.campus,
                    campus_name=request.campus_name,
                ),
                id=child_id,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                # A day already reconciled (or being reconciled, e.g. started by hand) is left alone.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            workflow.logger.info("reconciliation of the day exists already", extra={"child": child_id})
        return child_id

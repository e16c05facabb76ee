"""Fake reconciliation activities under the real names, for the Reconciliation workflow tests and its recorded
histories: every call is recorded, and what the statement and the match give is set per test."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.reconciliation import STATEMENT_NOT_READY
from models.notify import Notice
from models.reconciliation import (
    BadDebtExposure,
    FinishRun,
    InsuranceCheckRequest,
    MatchSummary,
    OpenRun,
    RecordResolution,
    ResolutionResult,
    StatementRequest,
    StatementSummary,
)
from workers.worker import ActivitySets, build_workers


class ReconciliationWorld:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.notices: list[Notice] = []
        self.opened: list[OpenRun] = []
        self.finished: list[FinishRun] = []
        self.resolutions: list[RecordResolution] = []
        self.statements: list[StatementRequest] = []
        # Download answers, in order: "ready", "not_ready", or an error type raised as a final refusal.
        self.downloads: list[str] = []
        self.download_delay_s = 0.0
        # What each round's match finds: the open item ids (none = balanced).
        self.open_items: list[list[int]] = []
        # The open bad debts each check finds (under the threshold unless a test says otherwise).
        self.exposure = BadDebtExposure(
            open_shortfall_fen=0, open_items=0, threshold_fen=100_000, alert=["role:finance", "role:admin"]
        )

    def _seen(self) -> None:
        self.calls[activity.info().activity_type] += 1

    def _summary(self, run_id: str) -> MatchSummary:
        open_ids = self.open_items.pop(0) if self.open_items else []
        return MatchSummary(
            run_id=run_id, matched=3, channel_only=len(open_ids), channel_payment_fen=12_345, open_item_ids=open_ids
        )

    @activity.defn(name="open_run")
    async def open_run(self, request: OpenRun) -> str:
        self._seen()
        self.opened.append(request)
        return f"{request.channel}-{request.bill_date:%Y%m%d}-{request.round}"

    @activity.defn(name="download_statement")
    async def download_statement(self, request: StatementRequest) -> StatementSummary:
        self._seen()
        self.statements.append(request)
        await asyncio.sleep(self.download_delay_s)
        answer = self.downloads.pop(0) if self.downloads else "ready"
        if answer == "not_ready":
            raise ApplicationError("对账单尚未生成", type=STATEMENT_NOT_READY, non_retryable=True)
        if answer != "ready":
            raise ApplicationError("账单格式无法识别", type=answer, non_retryable=True)
        return StatementSummary(
            statement_id=f"{request.channel}-{request.bill_date:%Y%m%d}",
            line_count=3,
            payment_total_fen=12_345,
            refund_total_fen=0,
        )

    @activity.defn(name="match_statement")
    async def match_statement(self, run_id: str) -> MatchSummary:
        self._seen()
        return self._summary(run_id)

    @activity.defn(name="check_insurance")
    async def check_insurance(self, request: InsuranceCheckRequest) -> MatchSummary:
        self._seen()
        return self._summary(request.run_id)

    @activity.defn(name="record_resolution")
    async def record_resolution(self, request: RecordResolution) -> ResolutionResult:
        self._seen()
        self.resolutions.append(request)
        return ResolutionResult(
            run_id=request.run_id,
            item_id=request.item_id,
            resolution=request.resolution,
            resolved_by=request.resolved_by,
            resolved_at=request.resolved_at,
            open_items=0,
        )

    @activity.defn(name="bad_debt_exposure")
    async def bad_debt_exposure(self) -> BadDebtExposure:
        self._seen()
        return self.exposure

    @activity.defn(name="finish_run")
    async def finish_run(self, request: FinishRun) -> None:
        self._seen()
        self.finished.append(request)

    @activity.defn(name="send_notice")
    async def send_notice(self, notice: Notice) -> int:
        self._seen()
        self.notices.append(notice)
        return 1

    def activity_sets(self) -> ActivitySets:
        return ActivitySets(
            local=[
                self.open_run,
                self.match_statement,
                self.record_resolution,
                self.finish_run,
                self.bad_debt_exposure,
            ],
            integration=[self.download_statement, self.check_insurance, self.send_notice],
        )


@dataclass
class ReconciliationHarness:
    client: Client
    queue: str
    world: ReconciliationWorld


@asynccontextmanager
async def reconciliation_harness(client: Client, queue: str) -> AsyncIterator[ReconciliationHarness]:
    """The real workers (every workflow) on a queue of its own, with these fakes as their activities."""
    world = ReconciliationWorld()
    async with AsyncExitStack() as stack:
        for worker in build_workers(client, queue, world.activity_sets()):
            await stack.enter_async_context(worker)
        yield ReconciliationHarness(client=client, queue=queue, world=world)

"""Record the histories of the reconciliation flows under `tests/histories/`, as `tests/replay/record.py` does for
the others (same rules: record only new scenarios; never re-record to make a replay pass).

Run with `.venv/bin/python -m tests.replay.record_reconciliation` (optionally naming scenarios).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date

from temporalio.client import WorkflowHandle

from models.reconciliation import (
    BadDebtExposure,
    DailyReconcileInput,
    ReconcileInput,
    ReconciliationStage,
    RerunRequest,
    Resolution,
    ResolveItem,
)
from tests.replay.record import Recorder, main
from tests.workflows.reconciliation_fakes import ReconciliationHarness, reconciliation_harness
from workflows.reconciliation import (
    DailyReconciliationWorkflow,
    ReconciliationWorkflow,
    daily_schedule_id,
    reconciliation_workflow_id,
)

DAY = date(2026, 11, 25)

Scenario = Callable[[Recorder], Awaitable[None]]


async def _start(h: ReconciliationHarness, channel: str, campus: str | None = None, **timings: int) -> WorkflowHandle:
    return await h.client.start_workflow(
        ReconciliationWorkflow.run,
        ReconcileInput(
            channel=channel, bill_date=DAY, campus=campus, campus_name="东院区" if campus else None, **timings
        ),
        id=reconciliation_workflow_id(channel, DAY, campus),
        task_queue=h.queue,
    )


async def _stage(handle: WorkflowHandle, stage: ReconciliationStage) -> None:
    for _ in range(400):
        if (await handle.query(ReconciliationWorkflow.progress)).stage is stage:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never reached {stage}")


async def not_ready_then_resolved(r: Recorder) -> None:
    async with reconciliation_harness(r.client, "record-reconcile-resolved") as h:
        h.world.downloads = ["not_ready", "ready"]
        h.world.open_items = [[11, 12]]
        handle = await _start(h, "wechatpay", retry_every_s=1)
        await _stage(handle, ReconciliationStage.AWAITING_RESOLUTION)
        for item_id in (11, 12):
            await handle.execute_update(
                ReconciliationWorkflow.resolve,
                ResolveItem(item_id=item_id, resolution=Resolution.CROSS_DAY, note="跨日", resolved_by="u-finance"),
            )
        await handle.result()
        await r.save(handle.id, "Reconciliation-not_ready_then_resolved")


async def rerun_superseded_then_balanced(r: Recorder) -> None:
    async with reconciliation_harness(r.client, "record-reconcile-rerun") as h:
        h.world.open_items = [[7], []]
        handle = await _start(h, "alipay")
        await _stage(handle, ReconciliationStage.AWAITING_RESOLUTION)
        await handle.execute_update(ReconciliationWorkflow.rerun, RerunRequest(requested_by="u-finance"))
        await handle.result()
        await r.save(handle.id, "Reconciliation-rerun_superseded_then_balanced")


async def daily_started_yesterday(r: Recorder) -> None:
    async with reconciliation_harness(r.client, "record-reconcile-daily") as h:
        launcher = await h.client.start_workflow(
            DailyReconciliationWorkflow.run,
            DailyReconcileInput(channel="sandbox"),
            id=f"{daily_schedule_id('sandbox')}-recorded",
            task_queue=h.queue,
        )
        child_id = await launcher.result()
        await h.client.get_workflow_handle(child_id).result()
        await r.save(launcher.id, "DailyReconciliation-started_yesterday")


async def campus_bad_debt_alerted_then_resolved(r: Recorder) -> None:
    """After the bad-debt check came in (patched): one campus's day whose open shortfalls pass the threshold."""
    async with reconciliation_harness(r.client, "record-reconcile-bad-debt") as h:
        h.world.open_items = [[21]]
        h.world.exposure = BadDebtExposure(
            open_shortfall_fen=250_000, open_items=3, threshold_fen=100_000, alert=["role:finance", "role:admin"]
        )
        handle = await _start(h, "wechatpay", "east")
        await _stage(handle, ReconciliationStage.AWAITING_RESOLUTION)
        await handle.execute_update(
            ReconciliationWorkflow.resolve,
            ResolveItem(item_id=21, resolution=Resolution.WRITTEN_OFF, note="经审批核销", resolved_by="u-supervisor"),
        )
        await handle.result()
        await r.save(handle.id, "Reconciliation-campus_bad_debt_alerted_then_resolved")


async def balanced_result_sent(r: Recorder) -> None:
    """After the daily result came in (patched): a balanced day, whose result finance is sent."""
    async with reconciliation_harness(r.client, "record-reconcile-balanced") as h:
        handle = await _start(h, "alipay")
        await handle.result()
        await r.save(handle.id, "Reconciliation-balanced_result_sent")


SCENARIOS: dict[str, Scenario] = {
    "Reconciliation-not_ready_then_resolved": not_ready_then_resolved,
    "Reconciliation-rerun_superseded_then_balanced": rerun_superseded_then_balanced,
    "DailyReconciliation-started_yesterday": daily_started_yesterday,
    "Reconciliation-campus_bad_debt_alerted_then_resolved": campus_bad_debt_alerted_then_resolved,
    "Reconciliation-balanced_result_sent": balanced_result_sent,
}


if __name__ == "__main__":
    main(SCENARIOS)

"""Reconciliation (对账): the day's flow with fake activities, the daily launcher, and the Schedules."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime, timedelta

import pytest
import pytest_asyncio
from temporalio.client import Client, ScheduleOverlapPolicy, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from core.settings import CampusSettings, Settings
from models.common import HOSPITAL_TZ
from models.reconciliation import (
    INSURANCE_CHANNEL,
    BadDebtExposure,
    DailyReconcileInput,
    ReconcileInput,
    ReconciliationStage,
    RerunRequest,
    Resolution,
    ResolveItem,
    RunStatus,
)
from tests.workflows.reconciliation_fakes import ReconciliationHarness, reconciliation_harness
from workers.schedules import apply_schedules
from workflows.duty import SCHEDULE_ID as DUTY_SCHEDULE_ID
from workflows.housekeeping import SCHEDULE_ID as HOUSEKEEPING_SCHEDULE_ID
from workflows.institution import REVERIFY_SCHEDULE_ID
from workflows.ledger import SCHEDULE_ID as LEDGER_SCHEDULE_ID
from workflows.reconciliation import (
    FINANCE,
    DailyReconciliationWorkflow,
    ReconciliationWorkflow,
    daily_schedule_id,
    reconciliation_workflow_id,
)
from workflows.supervision import SCHEDULE_ID as SUPERVISION_SCHEDULE_ID

DAY = date(2026, 11, 25)


@pytest_asyncio.fixture
async def recon(client: Client) -> AsyncIterator[ReconciliationHarness]:
    async with reconciliation_harness(client, f"recon-test-{uuid.uuid4().hex[:8]}") as harness:
        yield harness


async def start(h: ReconciliationHarness, channel: str | None = None, **timings: int) -> WorkflowHandle:
    request = ReconcileInput(channel=channel or f"c{uuid.uuid4().hex[:8]}", bill_date=DAY, **timings)
    return await h.client.start_workflow(
        ReconciliationWorkflow.run,
        request,
        id=reconciliation_workflow_id(request.channel, request.bill_date),
        task_queue=h.queue,
    )


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached: {what}")


async def stage_is(handle: WorkflowHandle, stage: ReconciliationStage) -> None:
    async def reached() -> bool:
        return (await handle.query(ReconciliationWorkflow.progress)).stage is stage

    await until(reached, stage.value)


def refusal(error: WorkflowUpdateFailedError) -> str | None:
    assert isinstance(error.cause, ApplicationError)
    return error.cause.type


def finance_templates(h: ReconciliationHarness) -> list[str]:
    assert all(n.user_ref == FINANCE for n in h.world.notices)
    return [n.template for n in h.world.notices]


async def test_a_balanced_day_closes_and_sends_finance_the_result(recon: ReconciliationHarness) -> None:
    handle = await start(recon)
    state = await handle.result()
    assert state.stage is ReconciliationStage.DONE
    assert state.summary is not None and state.summary.matched == 3
    assert [f.status for f in recon.world.finished] == [RunStatus.BALANCED]
    # The day's result goes to finance every day (8.4.3.4), a balanced one too.
    assert finance_templates(recon) == ["reconciliation_balanced"]
    (result,) = recon.world.notices
    assert result.key == f"{handle.id}:{state.run_id}:balanced"
    assert (result.params["matched"], result.params["channel_paid"], result.params["count"]) == ("3", "123.45", "0")
    assert handle.id.startswith("reconcile-c") and handle.id.endswith("-20261125")
    # The bad debts were totalled (under the threshold: nobody is alerted).
    assert recon.world.calls["bad_debt_exposure"] == 1


async def test_open_bad_debts_over_the_threshold_alert_finance_and_the_admins(recon: ReconciliationHarness) -> None:
    recon.world.exposure = BadDebtExposure(
        open_shortfall_fen=250_000, open_items=3, threshold_fen=100_000, alert=["role:finance", "role:admin"]
    )
    state = await (await start(recon)).result()
    assert state.stage is ReconciliationStage.DONE  # a balanced day of its own: the debts are other days'
    alerts = [n for n in recon.world.notices if n.template == "reconciliation_bad_debt"]
    assert sorted(n.user_ref for n in alerts) == ["role:admin", "role:finance"]
    # One alert per recipient and day, whichever channel's or campus's flow sends it first.
    assert {n.key for n in alerts} == {f"reconciliation-bad-debt:2026-11-25:{n.user_ref}" for n in alerts}
    assert alerts[0].params == {"date": "2026-11-25", "amount": "2500.00", "count": "3", "threshold": "1000.00"}


async def test_a_campus_is_reconciled_under_its_own_id(recon: ReconciliationHarness) -> None:
    recon.world.open_items = [[4]]
    channel = f"c{uuid.uuid4().hex[:8]}"
    handle = await recon.client.start_workflow(
        ReconciliationWorkflow.run,
        ReconcileInput(channel=channel, bill_date=DAY, campus="east", campus_name="东院区"),
        id=reconciliation_workflow_id(channel, DAY, "east"),
        task_queue=recon.queue,
    )
    assert handle.id == f"reconcile-{channel}-east-20261125"
    await stage_is(handle, ReconciliationStage.AWAITING_RESOLUTION)
    assert [(o.campus, s.campus) for o, s in zip(recon.world.opened, recon.world.statements, strict=True)] == [
        ("east", "east")
    ]
    await until(lambda: _true(len(recon.world.notices) == 1), "the mismatch notice")
    assert recon.world.notices[0].params["channel"] == f"{channel}（东院区）"
    assert (await handle.query(ReconciliationWorkflow.progress)).campus == "east"
    await resolve(handle, 4)
    await handle.result()


async def test_a_statement_not_ready_is_asked_for_again_on_a_timer(recon: ReconciliationHarness) -> None:
    recon.world.downloads = ["not_ready", "not_ready", "ready"]
    handle = await start(recon, retry_every_s=1)
    await stage_is(handle, ReconciliationStage.WAITING_STATEMENT)
    waiting = await handle.query(ReconciliationWorkflow.progress)
    assert waiting.last_error == "对账单尚未生成"

    state = await handle.result()
    assert (state.stage, state.download_attempts) == (ReconciliationStage.DONE, 3)
    assert recon.world.calls["download_statement"] == 3  # one call each time: no retries in between
    history = await handle.fetch_history()
    assert sum(1 for event in history.events if event.HasField("timer_started_event_attributes")) == 2


async def test_a_rerun_while_waiting_asks_at_once(recon: ReconciliationHarness) -> None:
    recon.world.downloads = ["not_ready", "ready"]
    handle = await start(recon, retry_every_s=3600)
    await stage_is(handle, ReconciliationStage.WAITING_STATEMENT)
    await handle.execute_update(ReconciliationWorkflow.rerun, RerunRequest(requested_by="u-finance"))
    assert (await handle.result()).stage is ReconciliationStage.DONE
    assert len(recon.world.opened) == 1  # the same run: nothing had been matched yet


async def test_waiting_is_given_up_and_finance_told(recon: ReconciliationHarness) -> None:
    recon.world.downloads = ["not_ready"] * 10
    handle = await start(recon, retry_every_s=1, give_up_after_s=2)
    state = await handle.result()
    assert state.stage is ReconciliationStage.STATEMENT_UNAVAILABLE
    assert [f.status for f in recon.world.finished] == [RunStatus.STATEMENT_UNAVAILABLE]
    assert finance_templates(recon) == ["reconciliation_unavailable"]


async def test_an_unreadable_statement_fails_the_run_at_once(recon: ReconciliationHarness) -> None:
    recon.world.downloads = ["BILL_UNREADABLE"]
    state = await (await start(recon)).result()
    assert (state.stage, state.download_attempts) == (ReconciliationStage.FAILED, 1)
    assert [(f.status, f.note) for f in recon.world.finished] == [(RunStatus.FAILED, "账单格式无法识别")]
    assert finance_templates(recon) == ["reconciliation_failed"]
    assert recon.world.notices[0].params["reason"] == "账单格式无法识别"


async def resolve(handle: WorkflowHandle, item_id: int, by: str = "u-finance"):  # type: ignore[no-untyped-def]
    request = ResolveItem(item_id=item_id, resolution=Resolution.PLATFORM_CORRECTED, note="已补记", resolved_by=by)
    return await handle.execute_update(ReconciliationWorkflow.resolve, request)


async def test_differences_wait_for_finance_to_resolve_each(recon: ReconciliationHarness) -> None:
    recon.world.open_items = [[11, 12]]
    handle = await start(recon)
    await stage_is(handle, ReconciliationStage.AWAITING_RESOLUTION)
    state = await handle.query(ReconciliationWorkflow.progress)
    assert (state.open_items, state.run_id) == (2, recon.world.opened[0].channel + "-20261125-1")
    await until(lambda: _true(len(recon.world.notices) == 1), "the mismatch notice")
    notice = recon.world.notices[0]
    assert (notice.template, notice.params["count"], notice.params["channel_only"]) == (
        "reconciliation_mismatch",
        "2",
        "2",
    )
    assert notice.params["channel_paid"] == "123.45"

    with pytest.raises(WorkflowUpdateFailedError) as unknown:
        await resolve(handle, 99)
    assert refusal(unknown.value) == "ITEM_NOT_OPEN"
    first = await resolve(handle, 11)
    assert (first.item_id, first.resolved_by) == (11, "u-finance")
    with pytest.raises(WorkflowUpdateFailedError) as twice:
        await resolve(handle, 11)
    assert refusal(twice.value) == "ITEM_NOT_OPEN"
    assert (await handle.query(ReconciliationWorkflow.progress)).open_items == 1
    await resolve(handle, 12)

    final = await handle.result()
    assert (final.stage, final.open_items) == (ReconciliationStage.DONE, 0)
    assert [r.item_id for r in recon.world.resolutions] == [11, 12]
    assert [f.status for f in recon.world.finished] == [RunStatus.RESOLVED]


async def _true(value: bool) -> bool:
    return value


async def test_finance_is_reminded_while_differences_stay_open(recon: ReconciliationHarness) -> None:
    recon.world.open_items = [[5]]
    handle = await start(recon, remind_every_s=1)
    await until(lambda: _true("reconciliation_reminder" in finance_templates(recon)), "a reminder")
    await resolve(handle, 5)
    await handle.result()
    keys = [n.key for n in recon.world.notices]
    assert len(keys) == len(set(keys))


async def test_a_rerun_supersedes_the_run_waiting_for_finance(recon: ReconciliationHarness) -> None:
    recon.world.open_items = [[7], []]
    handle = await start(recon)
    await stage_is(handle, ReconciliationStage.AWAITING_RESOLUTION)
    await handle.execute_update(ReconciliationWorkflow.rerun, RerunRequest(requested_by="u-admin"))
    final = await handle.result()

    assert (final.stage, final.round) == (ReconciliationStage.DONE, 2)
    assert [o.round for o in recon.world.opened] == [1, 2]
    first, second = (f"{recon.world.opened[0].channel}-20261125-{n}" for n in (1, 2))
    assert [(f.run_id, f.status) for f in recon.world.finished] == [
        (first, RunStatus.SUPERSEDED),
        (second, RunStatus.BALANCED),
    ]
    assert recon.world.finished[0].note == "u-admin 发起重新对账"
    with pytest.raises(RPCError) as over:
        await resolve(handle, 7)
    assert over.value.status is RPCStatusCode.NOT_FOUND  # the flow is over


async def test_a_rerun_is_refused_while_downloading(recon: ReconciliationHarness) -> None:
    recon.world.download_delay_s = 1.0
    handle = await start(recon)
    await stage_is(handle, ReconciliationStage.DOWNLOADING)
    with pytest.raises(WorkflowUpdateFailedError) as busy:
        await handle.execute_update(ReconciliationWorkflow.rerun, RerunRequest(requested_by="u-finance"))
    assert refusal(busy.value) == "RECONCILIATION_BUSY"
    with pytest.raises(WorkflowUpdateFailedError) as early:
        await resolve(handle, 1)
    assert refusal(early.value) == "NOT_AWAITING_RESOLUTION"
    await handle.result()


async def test_insurance_is_checked_instead_of_downloaded(recon: ReconciliationHarness) -> None:
    handle = await recon.client.start_workflow(
        ReconciliationWorkflow.run,
        ReconcileInput(channel=INSURANCE_CHANNEL, bill_date=DAY - timedelta(days=uuid.uuid4().int % 3000)),
        id=f"reconcile-insurance-test-{uuid.uuid4().hex[:8]}",
        task_queue=recon.queue,
    )
    assert (await handle.result()).stage is ReconciliationStage.DONE
    assert (recon.world.calls["check_insurance"], recon.world.calls["download_statement"]) == (1, 0)


async def test_the_daily_launcher_reconciles_yesterday_once(recon: ReconciliationHarness) -> None:
    channel = f"d{uuid.uuid4().hex[:8]}"
    yesterday = datetime.now(HOSPITAL_TZ).date() - timedelta(days=1)
    expected = reconciliation_workflow_id(channel, yesterday)

    async def launch(n: int) -> str:
        return await recon.client.execute_workflow(
            DailyReconciliationWorkflow.run,
            DailyReconcileInput(channel=channel),
            id=f"{daily_schedule_id(channel)}-{n}",
            task_queue=recon.queue,
        )

    assert await launch(1) == expected
    day = await recon.client.get_workflow_handle_for(ReconciliationWorkflow.run, expected).result()
    assert day.stage is ReconciliationStage.DONE
    # A second launch (a Schedule triggered by hand) leaves the reconciled day alone.
    assert await launch(2) == expected
    assert len(recon.world.opened) == 1
    assert recon.world.opened[0].bill_date == yesterday


async def test_the_daily_launcher_reconciles_a_campus_under_its_id(recon: ReconciliationHarness) -> None:
    channel = f"d{uuid.uuid4().hex[:8]}"
    yesterday = datetime.now(HOSPITAL_TZ).date() - timedelta(days=1)
    child_id = await recon.client.execute_workflow(
        DailyReconciliationWorkflow.run,
        DailyReconcileInput(channel=channel, campus="west", campus_name="西院区"),
        id=daily_schedule_id(channel, "west"),
        task_queue=recon.queue,
    )
    assert (
        child_id
        == reconciliation_workflow_id(channel, yesterday, "west")
        == f"reconcile-{channel}-west-{yesterday:%Y%m%d}"
    )
    day = await recon.client.get_workflow_handle_for(ReconciliationWorkflow.run, child_id).result()
    assert (day.stage, day.campus) == (ReconciliationStage.DONE, "west")


async def test_schedules_are_applied_idempotently_and_stay_paused(client: Client, uid: str) -> None:
    settings = Settings(adapter_payment=f"s{uid}", task_queue=f"sched-{uid}")  # type: ignore[call-arg]
    ids = await apply_schedules(client, settings)
    assert ids == [
        daily_schedule_id(f"s{uid}"),
        daily_schedule_id(INSURANCE_CHANNEL),
        LEDGER_SCHEDULE_ID,
        DUTY_SCHEDULE_ID,
        HOUSEKEEPING_SCHEDULE_ID,
        REVERIFY_SCHEDULE_ID,
        SUPERVISION_SCHEDULE_ID,
    ]
    try:
        handle = client.get_schedule_handle(ids[0])
        await handle.pause(note="财务核对中")
        assert await apply_schedules(client, settings) == ids

        described = await handle.describe()
        schedule = described.schedule
        assert schedule.state.paused and schedule.state.note == "财务核对中"
        assert schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
        assert schedule.spec.time_zone_name == "Asia/Shanghai"
        calendar = schedule.spec.calendars[0]
        assert ([r.start for r in calendar.hour], [r.start for r in calendar.minute]) == ([10], [30])
        action = schedule.action
        assert action.workflow == "DailyReconciliation"  # type: ignore[attr-defined]
        assert (action.id, action.task_queue) == (ids[0], f"sched-{uid}")  # type: ignore[attr-defined]
    finally:
        for schedule_id in ids:
            await client.get_schedule_handle(schedule_id).delete()


async def test_each_campus_gets_a_daily_schedule_of_its_own(client: Client, uid: str) -> None:
    campuses = {"east": CampusSettings(name="东院区"), "west": CampusSettings(name="西院区")}
    settings = Settings(adapter_payment=f"s{uid}", task_queue=f"sched-{uid}", campuses=campuses)  # type: ignore[call-arg]
    ids = await apply_schedules(client, settings)
    try:
        # The payment channel per campus (each campus's merchant has a statement of its own); 医保 once.
        assert ids[:3] == [
            daily_schedule_id(f"s{uid}", "east"),
            daily_schedule_id(f"s{uid}", "west"),
            daily_schedule_id(INSURANCE_CHANNEL),
        ]
        assert ids[0] == f"reconcile-daily-s{uid}-east"
        described = await client.get_schedule_handle(ids[1]).describe()
        assert described.schedule.state.note == f"s{uid}（西院区）每日对账（前一日，北京时间）"
        action = described.schedule.action
        assert action.id == ids[1]  # type: ignore[attr-defined]
        (argument,) = await client.data_converter.decode(action.args, [DailyReconcileInput])  # type: ignore[attr-defined]
        assert argument == DailyReconcileInput(channel=f"s{uid}", campus="west", campus_name="西院区")
    finally:
        for schedule_id in ids:
            await client.get_schedule_handle(schedule_id).delete()

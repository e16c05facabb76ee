"""PharmacistDutyCheck: business hours, the alert once per gap, and its Schedule, on the dev server with fakes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta

from temporalio.client import ScheduleActionExecutionStartWorkflow

from models.common import HOSPITAL_TZ
from models.duty import DutyCheckInput, DutyStatus
from tests.workflows.conftest import Harness
from workflows.duty import SCHEDULE_ID, PharmacistDutyCheckWorkflow, duty_check_schedule, gap_alert_key

ALL_DAY = DutyCheckInput(opens=time(0, 0), closes=time(23, 59, 59, 999999), grace_s=600)


async def run(h: Harness, check: DutyCheckInput, uid: str):
    return await h.client.execute_workflow(
        PharmacistDutyCheckWorkflow.run, check, id=f"{SCHEDULE_ID}-{uid}", task_queue=h.queue
    )


def test_business_hours_are_beijing_time_on_the_listed_weekdays() -> None:
    hours = DutyCheckInput(opens=time(8, 0), closes=time(18, 0), weekdays=[1, 2, 3, 4, 5])
    monday_9am = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    assert hours.opened_at(monday_9am) == datetime(2026, 11, 23, 8, 0, tzinfo=HOSPITAL_TZ)
    assert hours.opened_at(datetime(2026, 11, 22, 23, 59, tzinfo=UTC)) is None  # Monday 07:59 in Shanghai
    assert hours.opened_at(datetime(2026, 11, 23, 10, 0, tzinfo=UTC)) is None  # Monday 18:00: closed
    assert hours.opened_at(datetime(2026, 11, 28, 1, 0, tzinfo=UTC)) is None  # Saturday
    assert hours.hours() == "08:00–18:00"


async def test_nobody_on_duty_past_the_grace_alerts_the_admins_once_per_gap(harness: Harness, uid: str) -> None:
    since = datetime.now(UTC) - timedelta(hours=1)
    harness.world.duty = DutyStatus(on_duty=0, uncovered_since=since)
    first = await run(harness, ALL_DAY, f"{uid}-1")
    second = await run(harness, ALL_DAY, f"{uid}-2")
    assert first.in_hours and first.alert_key == second.alert_key == gap_alert_key(since)
    # Each run asks the notifier under the gap's own key (not the run's id), so the admins hear of the gap once.
    keys = [(n.key, n.user_ref, n.template) for n in harness.world.notices]
    assert keys == [(gap_alert_key(since), "role:admin", "pharmacist_duty_gap")] * 2
    assert harness.world.notices[0].params["hours"] == "00:00–23:59"

    # A new gap (someone signed in and out again) is a new alert.
    later = since + timedelta(minutes=30)
    harness.world.duty = DutyStatus(on_duty=0, uncovered_since=later)
    third = await run(harness, ALL_DAY, f"{uid}-3")
    assert third.alert_key == gap_alert_key(later) != first.alert_key


async def test_no_alert_while_someone_is_on_duty_or_within_the_grace(harness: Harness, uid: str) -> None:
    harness.world.duty = DutyStatus(on_duty=2)
    covered = await run(harness, ALL_DAY, f"{uid}-1")
    assert (covered.in_hours, covered.on_duty, covered.alert_key) == (True, 2, None)
    harness.world.duty = DutyStatus(on_duty=0, uncovered_since=datetime.now(UTC) - timedelta(minutes=5))
    handing_over = await run(harness, ALL_DAY, f"{uid}-2")
    assert handing_over.uncovered_since is not None and handing_over.alert_key is None
    assert harness.world.notices == []
    # Asked from the opening of today's hours, Beijing time.
    opened = harness.world.duty_asked[0].astimezone(HOSPITAL_TZ)
    assert (opened.hour, opened.minute) == (0, 0)


async def test_outside_business_hours_it_asks_nothing(harness: Harness, uid: str) -> None:
    today = datetime.now(HOSPITAL_TZ).isoweekday()
    closed_today = ALL_DAY.model_copy(update={"weekdays": [d for d in range(1, 8) if d != today]})
    result = await run(harness, closed_today, uid)
    assert not result.in_hours and harness.world.calls["duty_status"] == 0


async def test_the_schedule_starts_it(harness: Harness, uid: str) -> None:
    handle = await harness.client.create_schedule(
        f"{SCHEDULE_ID}-{uid}",
        duty_check_schedule(harness.queue, ALL_DAY, timedelta(minutes=5)),
        trigger_immediately=True,
    )
    try:
        for _ in range(150):
            actions = (await handle.describe()).info.recent_actions
            if actions:
                break
            await asyncio.sleep(0.2)
        started = actions[0].action
        assert isinstance(started, ScheduleActionExecutionStartWorkflow)
        result = await harness.client.get_workflow_handle_for(
            PharmacistDutyCheckWorkflow.run, started.workflow_id
        ).result()
        assert result.in_hours and result.on_duty == 1
        described = await handle.describe()
        assert described.schedule.state.note == "药师在岗检查（审方时间 00:00–23:59，北京时间）"
    finally:
        await handle.delete()

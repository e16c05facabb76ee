"""Temporal Schedules the platform relies on, created or brought up to date at worker start (idempotent).

Operators pause, trigger and backfill them in the Temporal UI; re-applying keeps a paused schedule paused.
"""

from __future__ import annotations

import dataclasses

import structlog
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from core.reconciliation import CATCHUP_WINDOW, DAILY_AT, reconciliation_channels
from core.settings import Settings
from models.reconciliation import DailyReconcileInput
from workflows.reconciliation import CHANNEL_NAMES, DailyReconciliationWorkflow, daily_schedule_id

log = structlog.get_logger()


def daily_reconciliation(channel: str, task_queue: str) -> Schedule:
    """Every day at `DAILY_AT` Beijing time: reconcile the day before (the launcher works out which day)."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DailyReconciliationWorkflow.run,
            DailyReconcileInput(channel=channel),
            id=daily_schedule_id(channel),
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(hour=[ScheduleRange(DAILY_AT.hour)], minute=[ScheduleRange(DAILY_AT.minute)])
            ],
            time_zone_name="Asia/Shanghai",
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(note=f"{CHANNEL_NAMES.get(channel, channel)}每日对账（前一日，北京时间）"),
    )


async def apply_reconciliation_schedules(client: Client, settings: Settings) -> list[str]:
    """Create each channel's daily schedule, or update it to the current definition; returns their ids."""
    applied = []
    for channel in reconciliation_channels(settings):
        schedule_id = daily_schedule_id(channel)
        schedule = daily_reconciliation(channel, settings.task_queue)
        try:
            await client.create_schedule(schedule_id, schedule)
            log.info("schedule created", schedule_id=schedule_id)
        except ScheduleAlreadyRunningError:

            def keep_state(current: ScheduleUpdateInput, schedule: Schedule = schedule) -> ScheduleUpdate:
                # The definition is ours; whether it is paused, and why, is the operators'.
                return ScheduleUpdate(schedule=dataclasses.replace(schedule, state=current.description.schedule.state))

            await client.get_schedule_handle(schedule_id).update(keep_state)
            log.info("schedule updated", schedule_id=schedule_id)
        applied.append(schedule_id)
    return applied

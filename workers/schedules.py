"""Temporal Schedules the platform relies on, created or brought up to date at worker start (idempotent).

Operators pause, trigger and backfill them in the Temporal UI; re-applying keeps a paused schedule paused.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

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
from models.duty import DutyCheckInput
from models.reconciliation import DailyReconcileInput
from workflows.duty import SCHEDULE_ID as DUTY_SCHEDULE_ID
from workflows.duty import duty_check_schedule
from workflows.ledger import SCHEDULE_ID as LEDGER_SCHEDULE_ID
from workflows.ledger import tree_head_schedule
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


def platform_schedules(settings: Settings) -> dict[str, Schedule]:
    """Every schedule by id: each channel's daily reconciliation, the evidence ledger's tree heads and the pharmacist
    duty check."""
    schedules = {
        daily_schedule_id(channel): daily_reconciliation(channel, settings.task_queue)
        for channel in reconciliation_channels(settings)
    }
    schedules[LEDGER_SCHEDULE_ID] = tree_head_schedule(settings.task_queue)
    duty_hours = DutyCheckInput(
        opens=settings.pharmacist_duty_opens,
        closes=settings.pharmacist_duty_closes,
        weekdays=settings.pharmacist_duty_weekdays,
        grace_s=settings.pharmacist_duty_grace_s,
    )
    every = timedelta(seconds=settings.pharmacist_duty_check_every_s)
    schedules[DUTY_SCHEDULE_ID] = duty_check_schedule(settings.task_queue, duty_hours, every)
    return schedules


async def apply_schedules(client: Client, settings: Settings) -> list[str]:
    """Create each schedule, or update it to the current definition; returns their ids."""
    applied = []
    for schedule_id, schedule in platform_schedules(settings).items():
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

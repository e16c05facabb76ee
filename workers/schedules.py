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

from core.reconciliation import CATCHUP_WINDOW, DAILY_AT, Target, reconciliation_targets
from core.settings import Settings
from models.duty import DutyCheckInput
from models.housekeeping import HousekeepingInput
from models.reconciliation import DailyReconcileInput
from workflows.duty import SCHEDULE_ID as DUTY_SCHEDULE_ID
from workflows.duty import duty_check_schedule
from workflows.housekeeping import SCHEDULE_ID as HOUSEKEEPING_SCHEDULE_ID
from workflows.housekeeping import housekeeping_schedule
from workflows.institution import REVERIFY_SCHEDULE_ID, reverification_schedule
from workflows.ledger import SCHEDULE_ID as LEDGER_SCHEDULE_ID
from workflows.ledger import tree_head_schedule
from workflows.reconciliation import CHANNEL_NAMES, DailyReconciliationWorkflow, daily_schedule_id
from workflows.supervision import SCHEDULE_ID as SUPERVISION_SCHEDULE_ID
from workflows.supervision import supervision_schedule

log = structlog.get_logger()


def daily_reconciliation(target: Target, task_queue: str, campus_name: str | None = None) -> Schedule:
    """Every day at `DAILY_AT` Beijing time: reconcile the day before (the launcher works out which day), for one
    channel of the hospital or of one campus."""
    channel, campus = target
    what = CHANNEL_NAMES.get(channel, channel) + (f"（{campus_name or campus}）" if campus else "")
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DailyReconciliationWorkflow.run,
            DailyReconcileInput(channel=channel, campus=campus, campus_name=campus_name),
            id=daily_schedule_id(channel, campus),
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(hour=[ScheduleRange(DAILY_AT.hour)], minute=[ScheduleRange(DAILY_AT.minute)])
            ],
            time_zone_name="Asia/Shanghai",
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(note=f"{what}每日对账（前一日，北京时间）"),
    )


def platform_schedules(settings: Settings) -> dict[str, Schedule]:
    """Every schedule by id: each channel's daily reconciliation, the evidence ledger's tree heads, the pharmacist
    duty check, the security housekeeping, the institutions' re-verification and the supervision data upload."""
    schedules = {
        daily_schedule_id(*target): daily_reconciliation(
            target, settings.task_queue, settings.campuses[target.campus].name if target.campus else None
        )
        for target in reconciliation_targets(settings)
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
    chores = HousekeepingInput(login_failure_window_s=settings.login_failure_window_s)
    schedules[HOUSEKEEPING_SCHEDULE_ID] = housekeeping_schedule(settings.task_queue, chores)
    schedules[REVERIFY_SCHEDULE_ID] = reverification_schedule(
        settings.task_queue, timedelta(seconds=settings.institution_reverify_every_s)
    )
    schedules[SUPERVISION_SCHEDULE_ID] = supervision_schedule(
        settings.task_queue, timedelta(seconds=settings.supervision_upload_every_s)
    )
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

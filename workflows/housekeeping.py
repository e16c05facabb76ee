"""SecurityHousekeeping: a Temporal Schedule runs this every hour to drop security records that no longer count for
anything (login-throttle rows with no lock in force and no failure inside the window). Runs never overlap; a missed
run only leaves the rows for the next one."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)

with workflow.unsafe.imports_passed_through():
    from activities.housekeeping import HousekeepingActivities
    from models.housekeeping import HousekeepingInput, HousekeepingResult
    from workflows.steps import db


SCHEDULE_ID = "security-housekeeping"
DEFAULT_INTERVAL = timedelta(hours=1)


@workflow.defn(name="SecurityHousekeeping")
class SecurityHousekeepingWorkflow:
    @workflow.run
    async def run(self, chores: HousekeepingInput) -> HousekeepingResult:
        purged: int = await db(HousekeepingActivities.purge_login_throttle, chores.login_failure_window_s)
        return HousekeepingResult(login_throttle_purged=purged)


def housekeeping_schedule(task_queue: str, chores: HousekeepingInput, every: timedelta = DEFAULT_INTERVAL) -> Schedule:
    """The Schedule to create (or update) under SCHEDULE_ID; its runs use the workflow id `security-housekeeping-<time>`."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SecurityHousekeepingWorkflow.run, chores, id=SCHEDULE_ID, task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note="清理过期的登录失败计数"),
    )

"""Pharmacist duty check (8.3.1.1: at least one pharmacist signed in during business hours).

A Temporal Schedule starts this flow every few minutes. Outside business hours it ends at once. Within them it asks
who is on duty; with nobody on duty for longer than the grace period it tells the admins. The alert's key is the
moment the gap began, so however many runs see the same gap, the admins hear of it once; the next gap (after
someone signs in and out again) gets its own alert.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
    from activities.duty import DutyActivities
    from models.duty import DutyCheckInput, DutyCheckResult, DutyStatus
    from workflows.steps import Notices, db, local


SCHEDULE_ID = "pharmacist-duty-check"


def gap_alert_key(uncovered_since: datetime) -> str:
    # In UTC: the same moment reads the same whether it came from the business hours or from a sign-out.
    return f"pharmacist-duty-gap:{uncovered_since.astimezone(UTC).isoformat()}"


@workflow.defn(name="PharmacistDutyCheck")
class PharmacistDutyCheckWorkflow:
    @workflow.run
    async def run(self, check: DutyCheckInput) -> DutyCheckResult:
        now = workflow.now()
        opened_at = check.opened_at(now)
        if opened_at is None:
            return DutyCheckResult(in_hours=False)
        status: DutyStatus = await db(DutyActivities.duty_status, opened_at)
        since = status.uncovered_since
        result = DutyCheckResult(in_hours=True, on_duty=status.on_duty, uncovered_since=since)
        if since is not None and now - since >= timedelta(seconds=check.grace_s):
            result.alert_key = gap_alert_key(since)
            notices = Notices()
            notices.send_once(
                result.alert_key,
                "role:admin",
                "pharmacist_duty_gap",
                since=local(since),
                hours=check.hours(),
            )
            await notices.flush()
        return result


def duty_check_schedule(task_queue: str, check: DutyCheckInput, every: timedelta) -> Schedule:
    """The Schedule to create (or update) under SCHEDULE_ID; its runs use the workflow id `pharmacist-duty-check-<time>`."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            PharmacistDutyCheckWorkflow.run, check, id=SCHEDULE_ID, task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=f"药师在岗检查（审方时间 {check.hours()}，北京时间）"),
    )

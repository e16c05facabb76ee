"""Requesting a leave or substitution (停诊/替诊): checks that give a definite answer at once, then the flow.

The checks here are for clear messages; the ScheduleChange flow's first step changes the schedule with one
conditional UPDATE, so of two requests racing for the same schedule exactly one is recorded.
"""

from __future__ import annotations

import secrets
from contextlib import suppress
from datetime import UTC, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.auth import Actor
from api.errors import Problem
from api.services.temporal_calls import workflow_call
from core.crypto.sm import sm3_hex
from core.settings import Settings
from models.common import Role
from models.schedule_change import ChangeKind, ChangeStatus, ScheduleChangeInput, ScheduleChangeState
from models.tables import Doctor, Schedule, ScheduleChange
from workflows.schedule_change import ScheduleChangeWorkflow, schedule_change_workflow_id

# Which schedule statuses each kind of change may start from (a substitute may fall ill too; one substitution).
CHANGEABLE = {ChangeKind.LEAVE: ("published", "substituted"), ChangeKind.SUBSTITUTION: ("published",)}


def change_id_for(actor: Actor, schedule_id: str, idempotency_key: str | None) -> str:
    """Derived from the Idempotency-Key when there is one, so a retried request finds the flow it started."""
    if idempotency_key is None:
        return f"chg-{secrets.token_hex(8)}"
    return f"chg-{sm3_hex(f'{actor.user_id}:{schedule_id}:{idempotency_key}'.encode())[:16]}"


def on_duty(schedule: Schedule) -> str:
    """The doctor who sees the session's patients: the substitute once it was substituted."""
    if schedule.status == "substituted" and schedule.substitute_doctor_id:
        return schedule.substitute_doctor_id
    return schedule.doctor_id


async def load_own_schedule(session: AsyncSession, actor: Actor, schedule_id: str) -> Schedule:
    schedule = await session.get(Schedule, schedule_id)
    if schedule is None:
        raise Problem(404, "NOT_FOUND", "排班不存在", f"排班 {schedule_id} 不存在")
    if actor.role is Role.DOCTOR and actor.ref not in (schedule.doctor_id, on_duty(schedule)):
        raise Problem(403, "FORBIDDEN", "无权执行此操作", "医生只能为本人的排班申请停诊或替诊")
    return schedule


async def plan_change(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    schedule: Schedule,
    change_id: str,
    kind: ChangeKind,
    reason: str,
    substitute_doctor_id: str | None,
) -> ScheduleChangeInput:
    if schedule.status not in CHANGEABLE[kind]:
        raise Problem(409, "SCHEDULE_ALREADY_CHANGED", "排班已调整", "该排班已停诊或已替诊，不能再次调整")
    if schedule.ends_at <= datetime.now(UTC):
        raise Problem(409, "SCHEDULE_OVER", "排班已结束", "该排班的出诊时间已结束，不能再停诊或替诊")
    doctor = await session.get(Doctor, on_duty(schedule))
    if doctor is None:
        raise Problem(404, "NOT_FOUND", "医生不存在", f"医生 {on_duty(schedule)} 不存在")
    substitute = None
    if kind is ChangeKind.SUBSTITUTION and substitute_doctor_id is not None:
        substitute = await _check_substitute(session, schedule, doctor, substitute_doctor_id)
    return ScheduleChangeInput(
        change_id=change_id,
        schedule_id=schedule.id,
        kind=kind,
        doctor_id=doctor.id,
        doctor_name=doctor.name,
        starts_at=schedule.starts_at,
        substitute_doctor_id=substitute.id if substitute else None,
        substitute_name=substitute.name if substitute else None,
        reason=reason,
        requested_by=actor.user_id,
        choice_window_s=settings.leave_choice_window_s,
    )


async def _check_substitute(session: AsyncSession, schedule: Schedule, doctor: Doctor, substitute_id: str) -> Doctor:
    """An active doctor of the same department, other than the schedule's, with no session of their own then."""
    substitute = await session.get(Doctor, substitute_id)
    if substitute is None or not substitute.active:
        raise _not_eligible("替诊医生不存在或已停止执业")
    if substitute.id == doctor.id:
        raise _not_eligible("替诊医生不能是排班医生本人")
    if substitute.department_id != doctor.department_id:
        raise _not_eligible("替诊医生须与排班医生同一科室")
    busy = await session.scalar(
        select(func.count())
        .select_from(Schedule)
        .where(
            or_(col(Schedule.doctor_id) == substitute.id, col(Schedule.substitute_doctor_id) == substitute.id),
            col(Schedule.status) != "cancelled",
            col(Schedule.starts_at) < schedule.ends_at,
            col(Schedule.ends_at) > schedule.starts_at,
        )
    )
    if busy:
        raise Problem(409, "SUBSTITUTE_BUSY", "替诊医生时间冲突", "替诊医生在该时段已有出诊安排")
    return substitute


def _not_eligible(detail: str) -> Problem:
    return Problem(409, "SUBSTITUTE_NOT_ELIGIBLE", "替诊医生不符合要求", detail)


async def start_change(client: Client, settings: Settings, change: ScheduleChangeInput) -> ScheduleChangeState:
    """Update-with-Start: answers once the change is recorded (or refused, as a problem)."""
    workflow_id = schedule_change_workflow_id(change.change_id)
    start = WithStartWorkflowOperation(
        ScheduleChangeWorkflow.run,
        change,
        id=workflow_id,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        # A change that already ran to its end is never run again: that would tell its patients twice.
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        task_queue=settings.task_queue,
    )
    try:
        return await workflow_call(
            client.execute_update_with_start_workflow(ScheduleChangeWorkflow.begin, start_workflow_operation=start)
        )
    except WorkflowAlreadyStartedError:
        # The operation's handle holds the same error; take it, or asyncio reports it as never retrieved.
        with suppress(WorkflowAlreadyStartedError):
            await start.workflow_handle()
        return await workflow_call(client.get_workflow_handle(workflow_id).query(ScheduleChangeWorkflow.state))


async def change_state(client: Client, row: ScheduleChange) -> ScheduleChangeState:
    """The flow's own view, with each visit's progress; from the table alone once the flow's history is gone."""
    handle: WorkflowHandle = client.get_workflow_handle(schedule_change_workflow_id(row.id))
    try:
        return await workflow_call(handle.query(ScheduleChangeWorkflow.state))
    except Problem as problem:
        if problem.status != 404:
            raise
    return ScheduleChangeState(
        change_id=row.id,
        schedule_id=row.schedule_id,
        kind=ChangeKind(row.kind),
        status=ChangeStatus(row.status),
        reason=row.reason,
        substitute_doctor_id=row.substitute_doctor_id,
    )

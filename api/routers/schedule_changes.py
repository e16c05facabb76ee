"""Leave and substitution of a schedule (停诊/替诊, 8.1.1.5): requested by an admin or the schedule's own doctor, run
as a ScheduleChange flow that reaches every booked patient."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import func, select
from sqlmodel import col

from api.auth import Actor, AdminDep, StaffDep
from api.deps import SessionDep, SettingsDep, TemporalDep
from api.errors import Problem, problem_responses
from api.idempotency import idempotent
from api.schemas.common import Limit, Offset, Page
from api.services.audit import audit
from api.services.schedule_changes import (
    change_id_for,
    change_state,
    load_own_schedule,
    plan_change,
    start_change,
)
from models.common import Role
from models.schedule_change import ChangeKind, ChangeStatus, ScheduleChangeState
from models.tables import Schedule, ScheduleChange

router = APIRouter(tags=["schedule-changes"])


class ScheduleChangeIn(BaseModel):
    kind: ChangeKind = Field(description="leave：停诊；substitution：替诊")
    substitute_doctor_id: str | None = Field(default=None, max_length=40, description="替诊医生（仅替诊）")
    reason: str = Field(min_length=1, max_length=500, examples=["临时外出参加会诊"])

    @model_validator(mode="after")
    def _substitute_goes_with_substitution(self) -> ScheduleChangeIn:
        if self.kind is ChangeKind.SUBSTITUTION and not self.substitute_doctor_id:
            raise ValueError("替诊须指定替诊医生")
        if self.kind is ChangeKind.LEAVE and self.substitute_doctor_id:
            raise ValueError("停诊不需指定替诊医生")
        return self


class ScheduleChangeOut(BaseModel):
    change_id: str
    schedule_id: str
    kind: ChangeKind
    substitute_doctor_id: str | None
    reason: str
    requested_by: str
    status: str
    affected_visits: int
    created_at: datetime
    finished_at: datetime | None


@router.post(
    "/schedules/{schedule_id}/changes",
    status_code=201,
    response_model=ScheduleChangeState,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
    summary="停诊/替诊",
)
async def request_change(
    schedule_id: str,
    body: ScheduleChangeIn,
    request: Request,
    actor: StaffDep,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """Cancel the session (停诊) or hand it to another doctor of the department (替诊). Answers once the change is
    recorded, with the visits it reaches; `GET /schedule-changes/{change_id}` follows their progress.

    A leave closes the session's free slots, cancels unpaid bookings, and offers each paid one rebooking or a full
    refund (automatic when the patient does not choose in time). A substitution moves every booking to the substitute.
    409 `SCHEDULE_ALREADY_CHANGED`, `SCHEDULE_OVER`, `SUBSTITUTE_NOT_ELIGIBLE`, `SUBSTITUTE_BUSY`.
    """
    schedule = await load_own_schedule(session, actor, schedule_id)

    async def compute() -> tuple[int, dict]:
        change_id = change_id_for(actor, schedule_id, idempotency_key)
        change = await plan_change(
            session, settings, actor, schedule, change_id, body.kind, body.reason, body.substitute_doctor_id
        )
        state = await start_change(temporal, settings, change)
        audit(
            session,
            actor,
            f"schedule.{body.kind.value}",
            "schedule",
            schedule_id,
            reason=body.reason,
            detail={"change_id": change_id, "substitute_doctor_id": body.substitute_doctor_id},
            request=request,
        )
        await session.commit()
        return 201, state.model_dump(mode="json")

    return await idempotent(request, actor, idempotency_key, compute)


@router.get(
    "/schedule-changes/{change_id}",
    response_model=ScheduleChangeState,
    responses=problem_responses(401, 403, 404),
    summary="停诊/替诊进度",
)
async def get_change(
    change_id: str, actor: StaffDep, session: SessionDep, temporal: TemporalDep
) -> ScheduleChangeState:
    """Each affected visit with its outcome: pending, offered, substituted, rebooked, refunded, cancelled."""
    row = await session.get(ScheduleChange, change_id)
    schedule = await session.get(Schedule, row.schedule_id) if row is not None else None
    if row is None or schedule is None or not _may_see(actor, schedule):
        raise Problem(404, "NOT_FOUND", "未找到", "停诊/替诊记录不存在")
    return await change_state(temporal, row)


def _may_see(actor: Actor, schedule: Schedule) -> bool:
    return actor.role is Role.ADMIN or actor.ref in (schedule.doctor_id, schedule.substitute_doctor_id)


@router.get(
    "/schedule-changes",
    response_model=Page[ScheduleChangeOut],
    responses=problem_responses(401, 403, 422),
    summary="停诊/替诊记录",
)
async def list_changes(
    actor: AdminDep,
    session: SessionDep,
    schedule_id: Annotated[str | None, Query(max_length=60, description="排班")] = None,
    status: Annotated[ChangeStatus | None, Query(description="in_progress 或 done")] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[ScheduleChangeOut]:
    """Newest first."""
    conditions = []
    if schedule_id is not None:
        conditions.append(col(ScheduleChange.schedule_id) == schedule_id)
    if status is not None:
        conditions.append(col(ScheduleChange.status) == status.value)
    total = await session.scalar(select(func.count()).select_from(ScheduleChange).where(*conditions)) or 0
    rows = (
        await session.execute(
            select(ScheduleChange)
            .where(*conditions)
            .order_by(col(ScheduleChange.created_at).desc(), col(ScheduleChange.id))
            .limit(limit)
            .offset(offset)
        )
    ).scalars()
    items = [
        ScheduleChangeOut(
            change_id=row.id,
            schedule_id=row.schedule_id,
            kind=ChangeKind(row.kind),
            substitute_doctor_id=row.substitute_doctor_id,
            reason=row.reason,
            requested_by=row.requested_by,
            status=row.status,
            affected_visits=row.affected_visits,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )
        for row in rows
    ]
    return Page(items=items, total=total, limit=limit, offset=offset)

"""Schedules as admins see them: with their doctor and how many of their slots are open, held, booked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.queries.listing import count_rows
from api.schemas.schedules import AdminSlotOut, ScheduleDetail, ScheduleOut, SlotCounts
from models.tables import Doctor, Schedule, Slot


@dataclass(frozen=True)
class ScheduleFilters:
    doctor_id: str | None = None
    department_id: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    status: str | None = None
    service_type: str | None = None
    disease_code: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.doctor_id is not None:
            conditions.append(col(Schedule.doctor_id) == self.doctor_id)
        if self.department_id is not None:
            conditions.append(col(Doctor.department_id) == self.department_id)
        if self.date_from is not None:
            conditions.append(col(Schedule.day) >= self.date_from)
        if self.date_to is not None:
            conditions.append(col(Schedule.day) <= self.date_to)
        if self.status is not None:
            conditions.append(col(Schedule.status) == self.status)
        if self.service_type is not None:
            conditions.append(col(Schedule.service_type) == self.service_type)
        if self.disease_code is not None:
            conditions.append(col(Schedule.disease_code) == self.disease_code)
        return conditions


def _rows(now: datetime) -> Select[Schedule, str, str, int, int, int, int, int]:
    # A hold whose payment window has lapsed counts as open, as it does for booking.
    live_hold = and_(col(Slot.status) == "held", col(Slot.held_until) >= now)
    lapsed_or_open = or_(col(Slot.status) == "open", and_(col(Slot.status) == "held", col(Slot.held_until) < now))
    counts = (
        select(
            col(Slot.schedule_id).label("schedule_id"),
            func.count().filter(lapsed_or_open).label("open"),
            func.count().filter(live_hold).label("held"),
            func.count().filter(col(Slot.status) == "booked").label("booked"),
            func.count().filter(col(Slot.status) == "closed").label("closed"),
            func.count().filter(col(Slot.is_extra)).label("extra"),
        )
        .group_by(col(Slot.schedule_id))
        .subquery()
    )
    return (
        select(
            Schedule,
            col(Doctor.name),
            col(Doctor.department_id),
            func.coalesce(counts.c.open, 0),
            func.coalesce(counts.c.held, 0),
            func.coalesce(counts.c.booked, 0),
            func.coalesce(counts.c.closed, 0),
            func.coalesce(counts.c.extra, 0),
        )
        .join(Doctor, col(Doctor.id) == col(Schedule.doctor_id))
        .outerjoin(counts, counts.c.schedule_id == col(Schedule.id))
    )


def _out(row: Any) -> ScheduleOut:
    schedule, doctor_name, department_id, open_, held, booked, closed, extra = row
    return ScheduleOut(
        **schedule.model_dump(),
        doctor_name=doctor_name,
        department_id=department_id,
        counts=SlotCounts(open=open_, held=held, booked=booked, closed=closed, extra=extra),
    )


async def list_schedules(
    session: AsyncSession, filters: ScheduleFilters, now: datetime, *, limit: int, offset: int
) -> tuple[list[ScheduleOut], int]:
    """One page in calendar order, and how many match in all."""
    query = _rows(now).where(*filters.conditions())
    total = await count_rows(session, query)
    rows = await session.execute(
        query.order_by(col(Schedule.starts_at), col(Schedule.doctor_id)).limit(limit).offset(offset)
    )
    return [_out(row) for row in rows], total


async def schedule_slots(session: AsyncSession, schedule_id: str) -> Sequence[Slot]:
    return (
        (
            await session.execute(
                select(Slot)
                .where(col(Slot.schedule_id) == schedule_id)
                .order_by(col(Slot.starts_at), col(Slot.is_extra), col(Slot.id))
                # Read what an edit in this session just wrote with bulk statements, not the objects it loaded.
                .execution_options(populate_existing=True)
            )
        )
        .scalars()
        .all()
    )


async def get_schedule(session: AsyncSession, schedule_id: str, now: datetime) -> ScheduleDetail | None:
    query = _rows(now).where(col(Schedule.id) == schedule_id).execution_options(populate_existing=True)
    row = (await session.execute(query)).one_or_none()
    if row is None:
        return None
    slots = [AdminSlotOut.model_validate(slot) for slot in await schedule_slots(session, schedule_id)]
    return ScheduleDetail(**_out(row).model_dump(), slots=slots)

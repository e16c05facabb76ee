"""Departments, doctors, slots, diseases and stop/substitution notices as the public sees them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from api.hospital_time import hospital_day
from api.queries.listing import count_rows
from models.tables import Department, Disease, Doctor, Schedule, ScheduleChange, Slot


def bookable(now: datetime) -> ColumnElement[bool]:
    """A slot anyone could take now: in the future, open or held by a hold that has lapsed, and not an extra slot
    reserved for one named patient."""
    lapsed_hold = and_(col(Slot.status) == "held", col(Slot.held_until) < now)
    return and_(
        col(Slot.starts_at) > now,
        or_(col(Slot.status) == "open", lapsed_hold),
        col(Slot.reserved_for).is_(None),
    )


def _contains(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with its own wildcards taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True)
class DoctorFilters:
    department_id: str | None = None
    title: str | None = None
    specialty: str | None = None
    disease_code: str | None = None
    day: date | None = None
    service_type: str | None = None
    min_fee_fen: int | None = None
    max_fee_fen: int | None = None
    available: bool = False

    def doctor_conditions(self) -> list[ColumnElement[bool]]:
        # Inactive doctors take no bookings, so the public never finds them in a list.
        conditions: list[ColumnElement[bool]] = [col(Doctor.active).is_(True)]
        if self.department_id is not None:
            conditions.append(col(Doctor.department_id) == self.department_id)
        if self.title is not None:
            conditions.append(col(Doctor.title) == self.title)
        if self.specialty is not None:
            conditions.append(col(Doctor.specialties).ilike(_contains(self.specialty), escape="\\"))
        return conditions

    def slot_conditions(self, now: datetime) -> list[ColumnElement[bool]]:
        """Conditions one upcoming slot of the doctor must meet together; empty when no filter is about slots."""
        conditions: list[ColumnElement[bool]] = []
        if self.disease_code is not None:
            conditions.append(col(Slot.disease_code) == self.disease_code)
        if self.day is not None:
            start, end = hospital_day(self.day)
            conditions += [col(Slot.starts_at) >= start, col(Slot.starts_at) < end]
        if self.service_type is not None:
            conditions.append(col(Slot.service_type) == self.service_type)
        if self.min_fee_fen is not None:
            conditions.append(col(Slot.fee_fen) >= self.min_fee_fen)
        if self.max_fee_fen is not None:
            conditions.append(col(Slot.fee_fen) <= self.max_fee_fen)
        if self.available:
            conditions.append(bookable(now))
        if conditions:
            conditions += [col(Slot.doctor_id) == col(Doctor.id), col(Slot.starts_at) > now]
        return conditions


def offered(subjects: Collection[str]) -> ColumnElement[bool]:
    """The department is enabled and practises under one of `subjects` (the registered 诊疗科目,
    `Settings.registered_subjects`): the public is offered no other, as the internet hospital may not practise beyond
    its physical hospital's licence."""
    return and_(col(Department.active), col(Department.subject_code).in_(list(subjects)))


async def list_departments(session: AsyncSession, subjects: Collection[str] | None = None) -> Sequence[Department]:
    """By name; only the enabled ones within `subjects` when given (the public catalogue), every one otherwise (admins)."""
    query = select(Department).order_by(col(Department.name), col(Department.id))
    if subjects is not None:
        query = query.where(offered(subjects))
    return (await session.execute(query)).scalars().all()


async def department_offered(session: AsyncSession, department_id: str, subjects: Collection[str]) -> bool:
    """The department exists, is enabled and is within `subjects`."""
    query = select(col(Department.id)).where(col(Department.id) == department_id, offered(subjects))
    return (await session.execute(query)).first() is not None


def _doctor_rows() -> Select[Doctor, str]:
    return select(Doctor, col(Department.name)).join(Department, col(Department.id) == col(Doctor.department_id))


async def list_doctors(
    session: AsyncSession,
    filters: DoctorFilters,
    now: datetime,
    subjects: Collection[str],
    *,
    limit: int,
    offset: int,
) -> tuple[list[tuple[Doctor, str]], int]:
    """One page of doctors (by name) matching the filters, of departments within `subjects`, and how many match in
    all."""
    query = _doctor_rows().where(*filters.doctor_conditions(), offered(subjects))
    slot_conditions = filters.slot_conditions(now)
    if slot_conditions:
        query = query.where(exists().where(*slot_conditions))
    total = await count_rows(session, query)
    rows = await session.execute(query.order_by(col(Doctor.name), col(Doctor.id)).limit(limit).offset(offset))
    return [(doctor, department_name) for doctor, department_name in rows], total


async def get_doctor(session: AsyncSession, doctor_id: str) -> tuple[Doctor, str] | None:
    row = (await session.execute(_doctor_rows().where(col(Doctor.id) == doctor_id))).one_or_none()
    return None if row is None else (row[0], row[1])


async def doctor_slots(session: AsyncSession, doctor_id: str, day: date, now: datetime) -> list[tuple[Slot, bool]]:
    """The doctor's slots on one hospital day, each with whether it can be booked now."""
    start, end = hospital_day(day)
    rows = await session.execute(
        select(Slot, bookable(now))
        .where(col(Slot.doctor_id) == doctor_id, col(Slot.starts_at) >= start, col(Slot.starts_at) < end)
        .order_by(col(Slot.starts_at), col(Slot.id))
    )
    return [(slot, bool(is_bookable)) for slot, is_bookable in rows]


async def list_diseases(session: AsyncSession, department_id: str | None) -> Sequence[Disease]:
    query = select(Disease).order_by(col(Disease.department_id), col(Disease.code))
    if department_id is not None:
        query = query.where(col(Disease.department_id) == department_id)
    return (await session.execute(query)).scalars().all()


@dataclass(frozen=True)
class Notice:
    change: ScheduleChange
    schedule: Schedule
    doctor: Doctor
    department_name: str
    substitute: Doctor | None


async def list_notices(
    session: AsyncSession,
    today: date,
    *,
    department_id: str | None,
    doctor_id: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Notice], int]:
    """Leaves and substitutions of sessions from `today` on, soonest session first; and how many in all."""
    substitute = aliased(Doctor)
    query = (
        select(ScheduleChange, Schedule, Doctor, col(Department.name), substitute)
        .join(Schedule, col(Schedule.id) == col(ScheduleChange.schedule_id))
        .join(Doctor, col(Doctor.id) == col(Schedule.doctor_id))
        .join(Department, col(Department.id) == col(Doctor.department_id))
        .outerjoin(substitute, col(substitute.id) == col(ScheduleChange.substitute_doctor_id))
        .where(col(Schedule.day) >= today)
    )
    if department_id is not None:
        query = query.where(col(Doctor.department_id) == department_id)
    if doctor_id is not None:
        query = query.where(or_(col(Schedule.doctor_id) == doctor_id, col(substitute.id) == doctor_id))
    total = await count_rows(session, query)
    rows = await session.execute(
        query.order_by(col(Schedule.starts_at), col(ScheduleChange.created_at), col(ScheduleChange.id))
        .limit(limit)
        .offset(offset)
    )
    return [Notice(*row) for row in rows], total


async def departments_with_diseases(
    session: AsyncSession, subjects: Collection[str]
) -> list[tuple[Department, list[Disease]]]:
    """The departments within `subjects`, each with its diseases."""
    diseases: dict[str, list[Disease]] = {}
    for disease in await list_diseases(session, None):
        diseases.setdefault(disease.department_id, []).append(disease)
    return [(department, diseases.get(department.id, [])) for department in await list_departments(session, subjects)]

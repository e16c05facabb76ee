"""Publishing and editing schedules (排班, 8.1.1.2, 8.6.1 h) and adding extra slots (加号, 8.1.1.5).

Locks, always taken in this order, keep the checks true until commit:
- the doctor row (FOR NO KEY UPDATE) while a doctor's sessions are published or moved, so two admins cannot publish
  overlapping sessions of one doctor at the same moment;
- the schedule row, so extra slots are counted against the cap one request at a time;
- the schedule's slot rows, so a booking cannot take a slot while its session is being changed (the booking's
  conditional UPDATE waits, then sees the committed change).
These are row locks a booking never waits on: it takes only a key-share lock on the doctor (foreign key check).

The functions here change rows but do not commit: the caller adds the audit event and commits both together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import Actor
from api.errors import Problem
from api.hospital_time import SHANGHAI, hospital_day
from api.schemas.catalogue import SERVICE_TYPE_NAMES
from api.schemas.schedules import ExtraSlotIn, RowError, SchedulePatch
from api.services.schedule_import import Row
from api.services.schedule_rules import (
    Busy,
    Draft,
    Reference,
    Violation,
    check_draft,
    extra_slot_id,
    new_schedule,
    overlap_problems,
    regular_slot_rows,
    resolve_fee,
)
from models.common import Role
from models.tables import Disease, Doctor, Notification, Patient, Schedule, Slot, Visit

FeeStandards = Mapping[str, Mapping[str, int]]

# Changing these moves, adds, removes or re-prices slots: refused once a patient holds or booked one.
_SLOT_FIELDS = frozenset({"start", "end", "slot_minutes", "capacity", "fee_fen", "service_type", "disease_code"})
_CONFLICTS = frozenset({"SCHEDULE_OVERLAP", "SCHEDULE_EXISTS"})
# Keeps each INSERT of an import well under PostgreSQL's 32,767 bind parameters.
_SLOT_CHUNK = 1000
# Which import column a problem found against the database points at.
_COLUMN_OF = {
    "UNKNOWN_DOCTOR": "doctor_id",
    "DOCTOR_INACTIVE": "doctor_id",
    "UNKNOWN_DISEASE": "disease_code",
    "DISEASE_NOT_IN_DEPARTMENT": "disease_code",
    "PAST_DATE": "date",
    "DATE_TOO_FAR": "date",
    "SERVICE_TYPE_NOT_OFFERED": "service_type",
    "FEE_NOT_SET": "fee_fen",
}


def _not_found(what: str) -> Problem:
    return Problem(404, "NOT_FOUND", "请求的资源不存在", f"{what}不存在。")


def _rejected(problems: Sequence[Violation]) -> Problem:
    first = problems[0]
    return Problem(
        409 if first.code in _CONFLICTS else 422,
        first.code,
        "排班无法发布",
        "；".join(problem.message for problem in problems),
        violations=[{"code": problem.code, "message": problem.message} for problem in problems],
    )


async def _lock_doctors(session: AsyncSession, doctor_ids: Iterable[str]) -> dict[str, Doctor]:
    # In id order, so two batches touching the same doctors cannot deadlock.
    rows = await session.execute(
        select(Doctor)
        .where(col(Doctor.id).in_(sorted(set(doctor_ids))))
        .order_by(col(Doctor.id))
        .with_for_update(key_share=True)
    )
    return {doctor.id: doctor for doctor in rows.scalars()}


async def _lock_schedule(session: AsyncSession, schedule_id: str) -> Schedule | None:
    return (
        await session.execute(
            select(Schedule)
            .where(col(Schedule.id) == schedule_id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def load_reference(session: AsyncSession, drafts: Sequence[Draft], *, lock: bool) -> Reference:
    """The doctors, diseases and existing sessions the drafts are checked against; `lock` for a real publish."""
    doctor_ids = {draft.doctor_id for draft in drafts}
    if lock:
        doctors = await _lock_doctors(session, doctor_ids)
    else:
        found = await session.execute(select(Doctor).where(col(Doctor.id).in_(doctor_ids)))
        doctors = {doctor.id: doctor for doctor in found.scalars()}
    codes = {draft.disease_code for draft in drafts}
    diseases = {
        d.code: d for d in (await session.execute(select(Disease).where(col(Disease.code).in_(codes)))).scalars()
    }
    busy: dict[str, list[Busy]] = defaultdict(list)
    if drafts:
        first = min(draft.day for draft in drafts) - timedelta(days=1)
        last = max(draft.day for draft in drafts) + timedelta(days=1)
        # A doctor is busy in their own published sessions and in those they took over as a substitute.
        sessions = await session.execute(
            select(Schedule).where(
                col(Schedule.day).between(first, last),
                or_(
                    and_(col(Schedule.doctor_id).in_(list(doctors)), col(Schedule.status) == "published"),
                    and_(col(Schedule.substitute_doctor_id).in_(list(doctors)), col(Schedule.status) == "substituted"),
                ),
            )
        )
        for schedule in sessions.scalars():
            local = schedule.starts_at.astimezone(SHANGHAI)
            label = f"该医生已有排班 {local:%Y-%m-%d %H:%M}–{schedule.ends_at.astimezone(SHANGHAI):%H:%M}"
            entry = Busy(schedule.id, schedule.starts_at, schedule.ends_at, label)
            holder = schedule.doctor_id if schedule.status == "published" else schedule.substitute_doctor_id
            busy[str(holder)].append(entry)
    ids = [draft.schedule_id for draft in drafts]
    taken = frozenset((await session.execute(select(col(Schedule.id)).where(col(Schedule.id).in_(ids)))).scalars())
    return Reference(doctors=doctors, diseases=diseases, busy=busy, taken_ids=taken)


async def _insert_slots(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    for start in range(0, len(rows), _SLOT_CHUNK):
        await session.execute(insert(Slot).values(list(rows[start : start + _SLOT_CHUNK])))


async def _publish(session: AsyncSession, schedules: Sequence[Schedule]) -> int:
    """Insert the sessions and their generated slots; how many slots."""
    session.add_all(schedules)
    await session.flush()
    rows = [row for schedule in schedules for row in regular_slot_rows(schedule)]
    await _insert_slots(session, rows)
    return len(rows)


async def create_schedule(session: AsyncSession, draft: Draft, standards: FeeStandards, now: datetime) -> Schedule:
    ref = await load_reference(session, [draft], lock=True)
    problems = check_draft(draft, ref, standards, now)
    if problems:
        raise _rejected(problems)
    fee = resolve_fee(draft, ref.doctors[draft.doctor_id], standards)
    assert fee is not None  # check_draft reports FEE_NOT_SET otherwise
    schedule = new_schedule(draft, fee, now)
    await _publish(session, [schedule])
    return schedule


def _row_problems(row: Row, problems: Sequence[Violation]) -> list[RowError]:
    return [
        RowError(line=row.line, column=_COLUMN_OF.get(problem.code), code=problem.code, message=problem.message)
        for problem in problems
    ]


async def import_rows(
    session: AsyncSession, rows: Sequence[Row], standards: FeeStandards, now: datetime, *, dry_run: bool
) -> tuple[list[Schedule], list[RowError], int]:
    """Check every row; publish them all only if none is bad. (schedules, errors, slot count)."""
    valid = [row for row in rows if row.draft is not None]
    drafts = [row.draft for row in valid if row.draft is not None]
    ref = await load_reference(session, drafts, lock=not dry_run)
    errors = [error for row in rows for error in row.errors]
    seen: dict[str, int] = {}
    in_file: dict[str, list[Busy]] = defaultdict(list)
    for row in valid:
        draft = row.draft
        assert draft is not None
        errors += _row_problems(row, check_draft(draft, ref, standards, now))
        if draft.schedule_id in seen:
            message = f"与第 {seen[draft.schedule_id]} 行重复（同一医生同一日期同一开始时间）"
            errors.append(RowError(line=row.line, column=None, code="DUPLICATE_ROW", message=message))
            continue
        seen[draft.schedule_id] = row.line
        clash = overlap_problems(draft, in_file[draft.doctor_id])
        errors += _row_problems(row, clash)
        in_file[draft.doctor_id].append(
            Busy(draft.schedule_id, draft.starts_at, draft.ends_at, f"第 {row.line} 行的排班 {draft.label()}")
        )
    errors.sort(key=lambda error: error.line)
    slots = sum(draft.capacity for draft in drafts)
    if errors or dry_run:
        return [], errors, slots
    schedules = []
    for draft in drafts:
        fee = resolve_fee(draft, ref.doctors[draft.doctor_id], standards)
        assert fee is not None
        schedules.append(new_schedule(draft, fee, now))
    await _publish(session, schedules)
    return schedules, [], slots


def _draft_of(schedule: Schedule) -> Draft:
    start, end = schedule.starts_at.astimezone(SHANGHAI), schedule.ends_at.astimezone(SHANGHAI)
    return Draft(
        doctor_id=schedule.doctor_id,
        day=schedule.day,
        start=start.time().replace(tzinfo=None),
        end=end.time().replace(tzinfo=None),
        slot_minutes=schedule.slot_minutes,
        capacity=schedule.capacity,
        service_type=schedule.service_type,
        disease_code=schedule.disease_code,
        fee_fen=schedule.fee_fen,
        extra_cap=schedule.extra_cap,
        note=schedule.note,
        existing_id=schedule.id,
    )


def _is_taken(slot: Slot, now: datetime) -> bool:
    return slot.status == "booked" or (slot.status == "held" and slot.held_until is not None and slot.held_until >= now)


async def _resync_slots(session: AsyncSession, schedule: Schedule, slots: Sequence[Slot], moved: timedelta) -> None:
    """Make the session's slots match its window and capacity. Only runs when none is held or booked."""
    rows = regular_slot_rows(schedule)
    wanted = {str(row["id"]) for row in rows}
    stale = [slot for slot in slots if not slot.is_extra and slot.id not in wanted]
    if stale:
        # A slot a visit points at (an earlier, cancelled one, or the lapsed hold of one whose record is still on
        # its way) must stay for that record: close it instead of deleting it.
        ids = [slot.id for slot in stale]
        keep = {slot.id for slot in stale if slot.visit_id is not None}
        keep |= set((await session.execute(select(col(Visit.slot_id)).where(col(Visit.slot_id).in_(ids)))).scalars())
        await session.execute(delete(Slot).where(col(Slot.id).in_(set(ids) - keep)))
        if keep:
            await session.execute(
                update(Slot)
                .where(col(Slot.id).in_(keep))
                .values(status="closed", visit_id=None, patient_id=None, held_until=None)
            )
    statement = insert(Slot).values(rows)
    # Existing slots (open, a lapsed hold, or closed by an earlier decrease) are reset to the new terms.
    reset = {
        name: statement.excluded[name]
        for name in ("starts_at", "ends_at", "fee_fen", "service_type", "disease_code", "status")
    }
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["id"], set_={**reset, "visit_id": None, "patient_id": None, "held_until": None}
        )
    )
    length = timedelta(minutes=schedule.slot_minutes)
    await session.execute(
        update(Slot)
        .where(col(Slot.schedule_id) == schedule.id, col(Slot.is_extra))
        .values(
            starts_at=col(Slot.starts_at) + moved,
            ends_at=col(Slot.starts_at) + moved + length,
            fee_fen=schedule.fee_fen,
            service_type=schedule.service_type,
            disease_code=schedule.disease_code,
        )
    )


async def edit_schedule(
    session: AsyncSession, schedule_id: str, patch: SchedulePatch, standards: FeeStandards, now: datetime
) -> tuple[Schedule, dict[str, list[Any]]]:
    """Apply the patch; returns the schedule and what changed ({field: [old, new]})."""
    found = await session.get(Schedule, schedule_id)
    if found is None:
        raise _not_found("排班")
    await _lock_doctors(session, [found.doctor_id])
    schedule = await _lock_schedule(session, schedule_id)
    assert schedule is not None  # schedules are never deleted
    if schedule.status != "published":
        raise Problem(409, "SCHEDULE_NOT_PUBLISHED", "排班已停诊或替诊", "该排班已停诊或替诊，不能再修改。")
    current = _draft_of(schedule)
    wanted = patch.model_dump(exclude_none=True)
    if wanted.get("service_type", current.service_type) != current.service_type and "fee_fen" not in wanted:
        wanted["fee_fen"] = None  # a new service type is priced afresh unless a fee is given
    draft = replace(current, **wanted)
    slots = (
        (await session.execute(select(Slot).where(col(Slot.schedule_id) == schedule_id).with_for_update()))
        .scalars()
        .all()
    )
    if draft.fee_fen is None:
        draft = replace(draft, fee_fen=resolve_fee(draft, await _doctor(session, schedule.doctor_id), standards))
    changes = {
        name: [getattr(current, name), getattr(draft, name)]
        for name in wanted
        if getattr(current, name) != getattr(draft, name)
    }
    if changes.keys() & _SLOT_FIELDS:
        if any(_is_taken(slot, now) for slot in slots):
            raise Problem(
                409,
                "SCHEDULE_HAS_BOOKINGS",
                "排班已有患者预约",
                "该排班已有号源被预约或锁定，不能修改时间、号数、费用、问诊方式或病种；如需调整，请办理停诊或替诊。",
            )
        problems = check_draft(draft, await load_reference(session, [draft], lock=False), standards, now)
        if problems:
            raise _rejected(problems)
    used = sum(1 for slot in slots if slot.is_extra)
    if draft.extra_cap < used:
        raise Problem(
            409,
            "EXTRA_CAP_BELOW_USED",
            "加号上限低于已加号数",
            f"该排班已加号 {used} 个，加号上限不能低于 {used}。",
            used=used,
        )
    if not changes:
        return schedule, changes
    moved = draft.starts_at - current.starts_at
    _apply(schedule, draft, now)
    if changes.keys() & _SLOT_FIELDS:
        await _resync_slots(session, schedule, slots, moved)
    return schedule, {name: [_plain(old), _plain(new)] for name, (old, new) in changes.items()}


async def _doctor(session: AsyncSession, doctor_id: str) -> Doctor:
    doctor = await session.get(Doctor, doctor_id)
    assert doctor is not None  # a schedule's doctor is a foreign key
    return doctor


def _apply(schedule: Schedule, draft: Draft, now: datetime) -> None:
    assert draft.fee_fen is not None
    schedule.starts_at = draft.starts_at.astimezone(UTC)
    schedule.ends_at = draft.ends_at.astimezone(UTC)
    schedule.slot_minutes = draft.slot_minutes
    schedule.capacity = draft.capacity
    schedule.fee_fen = draft.fee_fen
    schedule.service_type = draft.service_type
    schedule.disease_code = draft.disease_code
    schedule.extra_cap = draft.extra_cap
    schedule.note = draft.note
    schedule.updated_at = now


def _plain(value: object) -> object:
    """A value as the audit's JSON detail holds it."""
    return value.isoformat(timespec="minutes") if isinstance(value, time) else value


async def add_extra_slot(
    session: AsyncSession, schedule_id: str, body: ExtraSlotIn, actor: Actor, now: datetime
) -> tuple[Slot, Schedule]:
    """One more slot for the session, within its cap, optionally reserved for one named patient (notified)."""
    # The row lock makes concurrent requests count the extra slots one after another, so the cap holds.
    schedule = await _lock_schedule(session, schedule_id)
    if schedule is None:
        raise _not_found("排班")
    if actor.role is Role.DOCTOR and actor.ref != schedule.doctor_id:
        raise Problem(403, "FORBIDDEN", "无权执行此操作", "医生只能为自己的排班加号。")
    if schedule.status != "published":
        raise Problem(409, "SCHEDULE_NOT_PUBLISHED", "排班已停诊或替诊", "该排班已停诊或替诊，不能加号。")
    used, last_end = (
        await session.execute(
            select(
                func.count().filter(col(Slot.is_extra)),
                func.max(col(Slot.ends_at)).filter(col(Slot.status) != "closed"),
            ).where(col(Slot.schedule_id) == schedule_id)
        )
    ).one()
    if used >= schedule.extra_cap:
        raise Problem(
            409,
            "EXTRA_SLOT_CAP_REACHED",
            "加号已达上限",
            f"该排班最多可加号 {schedule.extra_cap} 个，已全部加满。",
            extra_cap=schedule.extra_cap,
            used=used,
        )
    length = timedelta(minutes=schedule.slot_minutes)
    starts_at = (body.starts_at or last_end or schedule.ends_at).astimezone(UTC)
    day_start, day_end = hospital_day(schedule.day)
    if starts_at <= now:
        raise Problem(422, "EXTRA_SLOT_IN_PAST", "加号时间已过", "加号的开始时间须晚于当前时间。")
    if not day_start <= starts_at <= day_end - length:
        raise Problem(422, "EXTRA_SLOT_OUTSIDE_DAY", "加号时间不在出诊当日", "加号须在该排班的出诊当日内。")
    patient = None
    if body.patient_id is not None:
        patient = await session.get(Patient, body.patient_id)
        if patient is None:
            raise _not_found("患者")
    slot = Slot(
        id=extra_slot_id(schedule.id, used + 1),
        schedule_id=schedule.id,
        doctor_id=schedule.doctor_id,
        starts_at=starts_at,
        ends_at=starts_at + length,
        fee_fen=schedule.fee_fen,
        service_type=schedule.service_type,
        disease_code=schedule.disease_code,
        is_extra=True,
        reserved_for=body.patient_id,
        added_by=actor.user_id,
        added_reason=body.reason,
        created_at=now,
    )
    session.add(slot)
    if patient is not None:
        await _notify_reserved(session, patient, slot, await _doctor(session, schedule.doctor_id))
    return slot, schedule


async def _notify_reserved(session: AsyncSession, patient: Patient, slot: Slot, doctor: Doctor) -> None:
    local = slot.starts_at.astimezone(SHANGHAI)
    service = SERVICE_TYPE_NAMES.get(slot.service_type, slot.service_type)
    await session.execute(
        insert(Notification)
        .values(
            key=f"extra-slot:{slot.id}",
            user_id=patient.user_id,
            template="extra_slot",
            title="医生为您加号",
            body=(
                f"{doctor.name}{doctor.title}为您追加了 {local.month}月{local.day}日 {local:%H:%M} 的{service}复诊号，"
                "该号仅限您本人预约，请尽快完成预约挂号。"
            ),
            params={
                "slot_id": slot.id,
                "schedule_id": slot.schedule_id,
                "doctor_id": doctor.id,
                "starts_at": slot.starts_at.isoformat(),
            },
            created_at=slot.created_at,
        )
        .on_conflict_do_nothing(index_elements=["key"])
    )

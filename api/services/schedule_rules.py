"""What makes a session (排班) publishable, and the slots it cuts its window into. Pure: no database, no I/O.

Shared by the admin API (single edits and batch import) and the demo seed, so both publish sessions the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from api.hospital_time import SHANGHAI
from api.schemas.catalogue import SERVICE_TYPE_NAMES
from models.tables import Disease, Doctor, Schedule

# Publishing further ahead than this is almost always a typo in the year.
MAX_DAYS_AHEAD = 366
# Bounds on what an admin may enter, shared by the JSON API and the batch import.
SLOT_MINUTES = (5, 240)
MAX_CAPACITY = 100
MAX_EXTRA_CAP = 99  # extra slot ids carry a two-digit ordinal
MAX_FEE_FEN = 1_000_000
MAX_NOTE = 500


@dataclass(frozen=True)
class Violation:
    """Why a session cannot be published: a stable code and a zh-CN message."""

    code: str
    message: str


@dataclass(frozen=True)
class Draft:
    """One session as an admin entered it: a day and a local (Asia/Shanghai) time window."""

    doctor_id: str
    day: date
    start: time
    end: time
    slot_minutes: int
    capacity: int
    service_type: str
    disease_code: str
    fee_fen: int | None = None
    extra_cap: int = 0
    note: str = ""
    # Set when the draft is an edit of a published session, which keeps its id whatever its new start.
    existing_id: str | None = None

    @property
    def schedule_id(self) -> str:
        return self.existing_id or schedule_id(self.doctor_id, self.day, self.start)

    @property
    def starts_at(self) -> datetime:
        return datetime.combine(self.day, self.start, SHANGHAI)

    @property
    def ends_at(self) -> datetime:
        return datetime.combine(self.day, self.end, SHANGHAI)

    def label(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.start:%H:%M}–{self.end:%H:%M}"


@dataclass(frozen=True)
class Busy:
    """A session already on a doctor's calendar (or earlier in the same import)."""

    schedule_id: str
    starts_at: datetime
    ends_at: datetime
    label: str  # how a message names it, e.g. "该医生已有排班 2026-03-02 08:30–10:00"


@dataclass
class Reference:
    """What the checks need from the database, loaded once for a whole batch."""

    doctors: Mapping[str, Doctor]
    diseases: Mapping[str, Disease]
    # Published sessions per doctor (as the doctor or as a substitute), and every schedule id already used.
    busy: Mapping[str, Sequence[Busy]]
    taken_ids: frozenset[str]


def schedule_id(doctor_id: str, day: date, start: time) -> str:
    # Doctor ids are at most 40 characters, so this stays within the 60 of `schedules.id`.
    return f"{doctor_id}-{day:%Y%m%d}-{start:%H%M}"


def slot_id(schedule_id: str, starts_at: datetime) -> str:
    return f"{schedule_id}-{starts_at.astimezone(SHANGHAI):%H%M}"


def extra_slot_id(schedule_id: str, ordinal: int) -> str:
    # By ordinal, not time: an extra slot may start when a regular one does (the doctor squeezes a patient in).
    return f"{schedule_id}-x{ordinal:02d}"


def window_minutes(draft: Draft) -> int:
    return int((draft.ends_at - draft.starts_at).total_seconds() // 60)


def resolve_fee(draft: Draft, doctor: Doctor, standards: Mapping[str, Mapping[str, int]]) -> int | None:
    """The session's fee: as entered, else the doctor's own fee for the service type, else the title's standard."""
    if draft.fee_fen is not None:
        return draft.fee_fen
    own = (doctor.service_fees or {}).get(draft.service_type)
    if own is not None:
        return own
    return standards.get(doctor.title, {}).get(draft.service_type)


def _window_problems(draft: Draft) -> list[Violation]:
    if draft.end <= draft.start:
        return [Violation("WINDOW_MISMATCH", f"结束时间 {draft.end:%H:%M} 应晚于开始时间 {draft.start:%H:%M}")]
    minutes = window_minutes(draft)
    if minutes % draft.slot_minutes:
        return [
            Violation(
                "WINDOW_MISMATCH",
                f"出诊时段 {minutes} 分钟不能按每号 {draft.slot_minutes} 分钟等分",
            )
        ]
    fits = minutes // draft.slot_minutes
    if draft.capacity > fits:
        return [
            Violation(
                "WINDOW_MISMATCH",
                f"号数 {draft.capacity} 超过时段容量：{minutes} 分钟按每号 {draft.slot_minutes} 分钟最多 {fits} 个号",
            )
        ]
    return []


def _date_problems(draft: Draft, now: datetime) -> list[Violation]:
    if draft.starts_at <= now:
        return [Violation("PAST_DATE", f"出诊时间 {draft.label()} 已过，不能排班")]
    if draft.day > now.astimezone(SHANGHAI).date() + timedelta(days=MAX_DAYS_AHEAD):
        return [Violation("DATE_TOO_FAR", f"日期 {draft.day:%Y-%m-%d} 超出可排班范围（{MAX_DAYS_AHEAD} 天内）")]
    return []


def _doctor_problems(
    draft: Draft, doctor: Doctor, disease: Disease | None, standards: Mapping[str, Mapping[str, int]]
) -> list[Violation]:
    problems = []
    if not doctor.active:
        problems.append(Violation("DOCTOR_INACTIVE", f"医生 {doctor.id} 已停用，不能排班"))
    if disease is not None and disease.department_id != doctor.department_id:
        problems.append(
            Violation("DISEASE_NOT_IN_DEPARTMENT", f"病种 {disease.code}（{disease.name}）不属于该医生所在科室")
        )
    service_name = SERVICE_TYPE_NAMES.get(draft.service_type, draft.service_type)
    if doctor.service_fees and draft.service_type not in doctor.service_fees:
        problems.append(Violation("SERVICE_TYPE_NOT_OFFERED", f"医生 {doctor.id} 未开通{service_name}问诊"))
    elif resolve_fee(draft, doctor, standards) is None:
        problems.append(
            Violation(
                "FEE_NOT_SET", f"未填写挂号费，且医生 {doctor.id}（{doctor.title}）没有{service_name}问诊的收费标准"
            )
        )
    return problems


def overlap_problems(draft: Draft, busy: Sequence[Busy]) -> list[Violation]:
    for other in busy:
        if (
            other.schedule_id != draft.schedule_id
            and draft.starts_at < other.ends_at
            and other.starts_at < draft.ends_at
        ):
            return [Violation("SCHEDULE_OVERLAP", f"与{other.label}时间重叠")]
    return []


def check_draft(
    draft: Draft, ref: Reference, standards: Mapping[str, Mapping[str, int]], now: datetime
) -> list[Violation]:
    """Every reason this session cannot be published against what the database holds (empty: it can)."""
    doctor = ref.doctors.get(draft.doctor_id)
    disease = ref.diseases.get(draft.disease_code)
    problems = []
    if doctor is None:
        problems.append(Violation("UNKNOWN_DOCTOR", f"医生 {draft.doctor_id} 不存在"))
    if disease is None:
        problems.append(Violation("UNKNOWN_DISEASE", f"病种 {draft.disease_code} 不存在"))
    problems += _window_problems(draft)
    problems += _date_problems(draft, now)
    if doctor is not None:
        problems += _doctor_problems(draft, doctor, disease, standards)
        if draft.existing_id is None and draft.schedule_id in ref.taken_ids:
            problems.append(Violation("SCHEDULE_EXISTS", f"该医生 {draft.label()} 的排班已存在"))
        else:
            problems += overlap_problems(draft, ref.busy.get(doctor.id, ()))
    return problems


def new_schedule(draft: Draft, fee_fen: int, now: datetime) -> Schedule:
    return Schedule(
        id=draft.schedule_id,
        doctor_id=draft.doctor_id,
        day=draft.day,
        starts_at=draft.starts_at.astimezone(UTC),
        ends_at=draft.ends_at.astimezone(UTC),
        slot_minutes=draft.slot_minutes,
        capacity=draft.capacity,
        extra_cap=draft.extra_cap,
        fee_fen=fee_fen,
        service_type=draft.service_type,
        disease_code=draft.disease_code,
        note=draft.note,
        created_at=now,
        updated_at=now,
    )


def regular_slot_rows(schedule: Schedule) -> list[dict[str, object]]:
    """The `capacity` slots of a session, back to back from its start, as rows for one INSERT."""
    length = timedelta(minutes=schedule.slot_minutes)
    rows: list[dict[str, object]] = []
    for n in range(schedule.capacity):
        starts_at = schedule.starts_at + n * length
        rows.append(
            {
                "id": slot_id(schedule.id, starts_at),
                "schedule_id": schedule.id,
                "doctor_id": schedule.doctor_id,
                "starts_at": starts_at,
                "ends_at": starts_at + length,
                "fee_fen": schedule.fee_fen,
                "service_type": schedule.service_type,
                "disease_code": schedule.disease_code,
                "status": "open",
                "is_extra": False,
            }
        )
    return rows

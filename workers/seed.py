"""The demo hospital: departments, diseases, doctors with their fees and a week of sessions (排班) with the slots
each session generates, pharmacists, the herb and exam catalogues, the demo accounts, and the offline diagnoses the
sandbox HIS returns for the demo patients.

Every row has a fixed id, so seeding again (each `qihuang dev` start does) is safe. Rows with live state (accounts,
patients, schedules, slots, herb stock) are only inserted when missing; reference rows (departments, diseases, staff
profiles, exams) are brought back to the values below; the sandbox HIS diagnoses are moved to ~30 days ago, so the
demo patients stay eligible for a revisit however old the dev database is.

A doctor's sessions cycle through the diseases of the department: the first session (tomorrow morning) of each doctor
is for the department's first disease, e.g. `demo-doctor` tomorrow morning sees 胃痞病 (TCM-PW-001), which is what
the sandbox HIS holds for `demo-patient`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import SQLModel, col

from api.services.access_admin import apply_finance_level
from api.services.schedule_rules import regular_slot_rows, schedule_id
from core.crypto.sm import sm3_hex
from core.db import transaction
from core.passwords import hash_password
from core.settings import Settings
from models.common import Role
from models.permissions import FinanceLevel, Permission
from models.revisit import OfflineDiagnosis
from models.tables import (
    Department,
    Disease,
    Doctor,
    ExamCatalogueEntry,
    Herb,
    Patient,
    Pharmacist,
    SandboxHisDiagnosis,
    Schedule,
    Slot,
    User,
    UserPermission,
)

log = logging.getLogger("seed")

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEMO_PASSWORD = "Qihuang#2026"

# Delivers one offline diagnosis to a sandbox HIS (e.g. `SandboxHis.add_diagnosis`) instead of the direct table write.
HisDiagnosisHook = Callable[[str, OfflineDiagnosis], Awaitable[None]]


@dataclass(frozen=True)
class DemoDepartment:
    id: str
    name: str
    description: str
    subject_code: str  # 诊疗科目 (《医疗机构诊疗科目名录》), within the default `Settings.registered_subjects`
    diseases: tuple[tuple[str, str], ...]  # (code, name)


@dataclass(frozen=True)
class DemoDoctor:
    id: str
    username: str
    name: str
    title: str
    department_id: str
    specialties: str
    his_code: str

    @property
    def user_id(self) -> str:
        return f"u-{self.username}"

    @property
    def licence_no(self) -> str:
        """A made-up 医师执业证书编码 (15 digits), one per demo doctor."""
        return f"1101100000{self.his_code[1:]:0>5}"


DEPARTMENTS: tuple[DemoDepartment, ...] = (
    DemoDepartment(
        "dept-pw",
        "脾胃病科",
        "胃痞、胃脘痛、泄泻、便秘等脾胃病的复诊调理。",
        "50.01",  # 中医科 内科专业
        (("TCM-PW-001", "胃痞病"), ("TCM-PW-002", "胃脘痛"), ("TCM-PW-003", "泄泻"), ("TCM-PW-004", "便秘")),
    ),
    DemoDepartment(
        "dept-xn",
        "心血管科（中医内科）",
        "胸痹、心悸、眩晕、不寐等心系病证的复诊调理。",
        "50.01",  # 中医科 内科专业
        (("TCM-XN-001", "胸痹"), ("TCM-XN-002", "心悸"), ("TCM-XN-003", "眩晕"), ("TCM-XN-004", "不寐")),
    ),
    DemoDepartment(
        "dept-fk",
        "妇科",
        "月经病、痛经、绝经前后诸证、带下病的复诊调理。",
        "50.03",  # 中医科 妇产科专业
        (("TCM-FK-001", "月经不调"), ("TCM-FK-002", "痛经"), ("TCM-FK-003", "绝经前后诸证"), ("TCM-FK-004", "带下病")),
    ),
    DemoDepartment(
        "dept-zj",
        "针灸推拿科",
        "项痹、腰痛、面瘫、痹证的复诊与居家调护指导。",
        "50.13",  # 中医科 针灸科专业
        (("TCM-ZJ-001", "项痹"), ("TCM-ZJ-002", "腰痛"), ("TCM-ZJ-003", "面瘫"), ("TCM-ZJ-004", "痹证")),
    ),
)

DOCTORS: tuple[DemoDoctor, ...] = (
    DemoDoctor("doc-1", "demo-doctor", "李明远", "主任医师", "dept-pw", "慢性胃炎、功能性消化不良、胃痛", "D0001"),
    DemoDoctor("doc-2", "demo-doctor2", "王清和", "主治医师", "dept-pw", "肠易激综合征、慢性腹泻、便秘", "D0002"),
    DemoDoctor("doc-3", "demo-doctor3", "陈素琴", "副主任医师", "dept-xn", "冠心病、心律失常、失眠", "D0003"),
    DemoDoctor("doc-4", "demo-doctor4", "赵国华", "主任医师", "dept-xn", "高血压、眩晕、心力衰竭调护", "D0004"),
    DemoDoctor("doc-5", "demo-doctor5", "周婉仪", "副主任医师", "dept-fk", "月经失调、痛经、围绝经期综合征", "D0005"),
    DemoDoctor("doc-6", "demo-doctor6", "孙正阳", "主治医师", "dept-zj", "颈椎病、腰椎间盘突出、周围性面瘫", "D0006"),
)

# What the demo hospital charges per service type (图文/电话/视频), in fen; the demo sessions are all 图文.
SERVICE_FEES_BY_TITLE: dict[str, dict[str, int]] = {
    "主任医师": {"text": 5000, "phone": 8000, "video": 10000},
    "副主任医师": {"text": 3000, "phone": 5000, "video": 6000},
    "主治医师": {"text": 2000, "video": 4000},
}

PHARMACISTS: tuple[tuple[str, str, str, str], ...] = (  # (id, username, name, licence number)
    ("ph-1", "demo-pharmacist", "吴静", "YS-2021-0001"),
    ("ph-2", "demo-pharmacist2", "郑涛", "YS-2022-0002"),
)

PATIENTS: tuple[tuple[str, str, str], ...] = (  # (id, username, display name)
    ("pat-demo", "demo-patient", "演示患者一"),
    ("pat-demo2", "demo-patient2", "演示患者二"),
)

OTHER_ACCOUNTS: tuple[tuple[str, Role, str], ...] = (
    ("demo-admin", Role.ADMIN, "演示管理员"),
    ("demo-finance", Role.FINANCE, "演示财务"),
)

# Who the demo patients are. The demo submits these over the API for real-name verification; the sandbox HIS knows
# them by the SM3 digest of the ID-card number. The numbers carry a correct GB 11643 check digit.
DEMO_IDENTITIES: dict[str, dict[str, str]] = {
    "demo-patient": {"name": "张三", "id_card_no": "110101198001010010", "phone": "13800138000"},
    "demo-patient2": {"name": "李四", "id_card_no": "310104198506150031", "phone": "13900139000"},
}

# (encounter id, disease code, doctor id) of the offline visit the sandbox HIS holds for each demo patient.
DEMO_HIS_DIAGNOSES: dict[str, tuple[str, str, str]] = {
    "demo-patient": ("his-enc-demo-1", "TCM-PW-001", "doc-1"),
    "demo-patient2": ("his-enc-demo-2", "TCM-XN-004", "doc-3"),
}
HIS_DIAGNOSIS_AGE = timedelta(days=30)

# Two sessions a day, eight 15-minute slots each, for a week starting tomorrow (Asia/Shanghai).
SESSION_STARTS = (time(8, 30), time(14, 0))
SLOTS_PER_SESSION = 8
SLOT_LENGTH = timedelta(minutes=15)
SCHEDULE_DAYS = 7
EXTRA_SLOTS_PER_SESSION = 2

# The exam catalogue (检查/检验) doctors order from: price in fen, the department that performs it, whether the
# patient books a day for it and how many a day it takes, what the patient does before it.
EXAMS: tuple[ExamCatalogueEntry, ...] = (
    ExamCatalogueEntry(code="LAB-CBC", name="血常规", category="lab", price_fen=1800, department="检验科"),
    ExamCatalogueEntry(
        code="LAB-LFT", name="肝功能", category="lab", price_fen=6500, department="检验科",
        preparation="检查前空腹8小时",
    ),
    ExamCatalogueEntry(
        code="TCM-TONGUE", name="舌象仪检测", category="exam", price_fen=3000, department="中医诊断室",
        needs_booking=True, daily_capacity=20, preparation="检查前2小时勿进食染色食物，勿刮舌苔",
    ),
    ExamCatalogueEntry(
        code="TCM-PULSE", name="脉象仪检测", category="exam", price_fen=3000, department="中医诊断室",
        needs_booking=True, daily_capacity=20, preparation="检查前静坐休息10分钟",
    ),
    ExamCatalogueEntry(
        code="US-ABD", name="腹部彩超", category="exam", price_fen=15000, department="超声科",
        needs_booking=True, daily_capacity=30, preparation="检查前空腹8小时",
    ),
    ExamCatalogueEntry(code="ECG", name="常规心电图", category="exam", price_fen=2500, department="心电图室"),
)  # fmt: skip

HERB_STOCK_G = 50_000
# Precious materials (贵细药材) are priced far above everyday 饮片.
PRECIOUS_HERBS = frozenset(
    {
        "西红花",
        "麝香",
        "牛黄",
        "体外培育牛黄",
        "羚羊角",
        "鹿茸",
        "人参",
        "红参",
        "西洋参",
        "三七",
        "阿胶",
        "鹿角胶",
        "龟甲胶",
        "沉香",
        "天然冰片",
    }
)


@dataclass
class SeedSummary:
    """How many rows of each kind this run created (reference rows are upserted and not counted)."""

    users: int = 0
    patients: int = 0
    schedules: int = 0
    slots: int = 0
    herbs: int = 0


def herb_price_fen_per_100g(name: str, *, toxic: bool) -> int:
    """A stable, plausible price: 2–30 元/100 g from a hash of the name, more for toxic and precious materials."""
    spread = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")
    base = 200 + spread % 2801
    if name in PRECIOUS_HERBS:
        return base * 20
    if toxic:
        # Toxic materials (毒性中药) need licensed purchase and locked storage.
        return base * 3
    return base


def load_herbs() -> list[dict[str, Any]]:
    """The herb records of the rule engine's knowledge base, which doubles as the pharmacy catalogue."""
    path = resources.files("activities").joinpath("rules", "tcm-knowledge.json")
    herbs: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["herbs"]
    return herbs


def first_schedule_day(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(SHANGHAI).date() + timedelta(days=1)


def demo_schedules(first_day: date, now: datetime) -> list[Schedule]:
    """One session per doctor per half-day; a doctor's sessions cycle through the diseases of the department."""
    departments = {department.id: department for department in DEPARTMENTS}
    schedules = []
    for doctor in DOCTORS:
        diseases = departments[doctor.department_id].diseases
        for offset in range(SCHEDULE_DAYS):
            day = first_day + timedelta(days=offset)
            for session, session_start in enumerate(SESSION_STARTS):
                start = datetime.combine(day, session_start, SHANGHAI)
                schedules.append(
                    Schedule(
                        id=schedule_id(doctor.id, day, session_start),
                        doctor_id=doctor.id,
                        day=day,
                        starts_at=start.astimezone(UTC),
                        ends_at=(start + SLOTS_PER_SESSION * SLOT_LENGTH).astimezone(UTC),
                        slot_minutes=int(SLOT_LENGTH.total_seconds() // 60),
                        capacity=SLOTS_PER_SESSION,
                        extra_cap=EXTRA_SLOTS_PER_SESSION,
                        fee_fen=SERVICE_FEES_BY_TITLE[doctor.title]["text"],
                        service_type="text",
                        disease_code=diseases[(offset * len(SESSION_STARTS) + session) % len(diseases)][0],
                        created_at=now,
                        updated_at=now,
                    )
                )
    return schedules


def demo_his_diagnoses(now: datetime) -> list[tuple[str, OfflineDiagnosis]]:
    """(ID-card number, diagnosis) for each demo patient."""
    departments = {department.id: department for department in DEPARTMENTS}
    doctors = {doctor.id: doctor for doctor in DOCTORS}
    result = []
    for username, (encounter_id, disease_code, doctor_id) in DEMO_HIS_DIAGNOSES.items():
        doctor = doctors[doctor_id]
        department = departments[doctor.department_id]
        result.append(
            (
                DEMO_IDENTITIES[username]["id_card_no"],
                OfflineDiagnosis(
                    encounter_id=encounter_id,
                    disease_code=disease_code,
                    disease_name=dict(department.diseases)[disease_code],
                    diagnosed_at=now - HIS_DIAGNOSIS_AGE,
                    department=department.name,
                    doctor_name=doctor.name,
                ),
            )
        )
    return result


def _rows(records: Iterable[SQLModel]) -> list[dict[str, Any]]:
    return [record.model_dump() for record in records]


async def _upsert(session: AsyncSession, table: type[SQLModel], key: str, records: Sequence[SQLModel]) -> None:
    statement = insert(table).values(_rows(records))
    columns = [name for name in records[0].model_dump() if name != key]
    await session.execute(
        statement.on_conflict_do_update(index_elements=[key], set_={c: statement.excluded[c] for c in columns})
    )


async def _insert_missing(session: AsyncSession, table: type[SQLModel], key: str, records: Sequence[SQLModel]) -> int:
    """Insert the records that do not exist yet; return how many were new."""
    statement = insert(table).values(_rows(records)).on_conflict_do_nothing().returning(getattr(table, key))
    return len((await session.execute(statement)).all())


def _accounts() -> list[tuple[str, Role, str]]:
    """(username, role, display name) of every demo account."""
    return [
        *((username, Role.PATIENT, display) for _, username, display in PATIENTS),
        *((doctor.username, Role.DOCTOR, doctor.name) for doctor in DOCTORS),
        *((username, Role.PHARMACIST, name) for _, username, name, _ in PHARMACISTS),
        *OTHER_ACCOUNTS,
    ]


async def _seed_users(session: AsyncSession) -> int:
    accounts = _accounts()
    ids = [f"u-{username}" for username, _, _ in accounts]
    existing = set((await session.execute(select(col(User.id)).where(col(User.id).in_(ids)))).scalars())
    # scrypt is deliberately slow: hash only for accounts that do not exist yet.
    missing = [
        User(
            id=f"u-{username}",
            username=username,
            password_hash=hash_password(DEMO_PASSWORD),
            role=role,
            display_name=name,
        )
        for username, role, name in accounts
        if f"u-{username}" not in existing
    ]
    return await _insert_missing(session, User, "id", missing) if missing else 0


def _herb_rows(herbs: list[dict[str, Any]]) -> list[Herb]:
    return [
        Herb(
            name=herb["name"],
            pinyin=herb.get("pinyin") or "",
            price_fen_per_100g=herb_price_fen_per_100g(herb["name"], toxic=bool(herb.get("toxic"))),
            # Banned materials (e.g. 犀角) stay in the catalogue so prescriptions naming them resolve, but never stock.
            stock_g=0 if herb.get("banned") else HERB_STOCK_G,
        )
        for herb in herbs
    ]


async def _seed_his_diagnoses(session: AsyncSession, diagnoses: list[tuple[str, OfflineDiagnosis]]) -> None:
    rows = [
        SandboxHisDiagnosis(id_card_digest=sm3_hex(id_card_no.encode()), **diagnosis.model_dump())
        for id_card_no, diagnosis in diagnoses
    ]
    await _upsert(session, SandboxHisDiagnosis, "encounter_id", rows)


async def seed_demo(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    his_sandbox_hook: HisDiagnosisHook | None = None,
) -> SeedSummary:
    """Create (or complete) the demo hospital. Refused in production."""
    if settings.is_production:
        raise RuntimeError("the demo hospital is never seeded into a production database")
    now = datetime.now(UTC)
    first_day = first_schedule_day(now)
    diagnoses = demo_his_diagnoses(now)
    herbs = load_herbs()
    summary = SeedSummary()
    async with transaction(sessions) as session:
        await _upsert(
            session,
            Department,
            "id",
            [
                Department(id=d.id, name=d.name, description=d.description, subject_code=d.subject_code)
                for d in DEPARTMENTS
            ],
        )
        await _upsert(
            session,
            Disease,
            "code",
            [Disease(code=code, name=name, department_id=d.id) for d in DEPARTMENTS for code, name in d.diseases],
        )
        summary.users = await _seed_users(session)
        # The demo's finance account resolves differences and writes off bad debts (new finance staff are clerks).
        await apply_finance_level(session, "u-demo-finance", FinanceLevel.SUPERVISOR, None, "演示财务主管")
        # The demo's second pharmacist is the senior one who approves catalogue changes (8.6.2.3).
        await session.execute(
            insert(UserPermission)
            .values(
                user_id="u-demo-pharmacist2",
                permission=Permission.CATALOG_APPROVE.value,
                granted=True,
                reason="演示高级药师：审核发布药品目录变更",
            )
            .on_conflict_do_nothing()
        )
        await _upsert(
            session,
            Doctor,
            "id",
            [
                Doctor(
                    id=doctor.id,
                    user_id=doctor.user_id,
                    name=doctor.name,
                    title=doctor.title,
                    department_id=doctor.department_id,
                    specialties=doctor.specialties,
                    introduction=f"{doctor.title}，擅长{doctor.specialties}。",
                    his_code=doctor.his_code,
                    licence_no=doctor.licence_no,
                    service_fees=SERVICE_FEES_BY_TITLE[doctor.title],
                )
                for doctor in DOCTORS
            ],
        )
        await _upsert(
            session,
            Pharmacist,
            "id",
            [Pharmacist(id=id_, user_id=f"u-{user}", name=name, licence_no=no) for id_, user, name, no in PHARMACISTS],
        )
        # No identity yet: the demo submits DEMO_IDENTITIES over the API for real-name verification.
        summary.patients = await _insert_missing(
            session, Patient, "id", [Patient(id=id_, user_id=f"u-{username}") for id_, username, _ in PATIENTS]
        )
        schedules = demo_schedules(first_day, now)
        summary.schedules = await _insert_missing(session, Schedule, "id", schedules)
        # The slots each session generates when an admin publishes it (see api.services.schedules).
        slots = [Slot.model_validate(row) for schedule in schedules for row in regular_slot_rows(schedule)]
        summary.slots = await _insert_missing(session, Slot, "id", slots)
        summary.herbs = await _insert_missing(session, Herb, "name", _herb_rows(herbs))
        await _upsert(session, ExamCatalogueEntry, "code", EXAMS)
        if his_sandbox_hook is None:
            await _seed_his_diagnoses(session, diagnoses)
    if his_sandbox_hook is not None:
        for id_card_no, diagnosis in diagnoses:
            await his_sandbox_hook(id_card_no, diagnosis)

    log.info(
        "hospital: %d departments, %d diseases, %d doctors, %d pharmacists (reference data up to date)",
        len(DEPARTMENTS),
        sum(len(d.diseases) for d in DEPARTMENTS),
        len(DOCTORS),
        len(PHARMACISTS),
    )
    log.info("accounts: %d created, %d in all", summary.users, len(_accounts()))
    log.info("patients: %d created (identity is filled in by real-name verification)", summary.patients)
    log.info(
        "schedules: %d and their slots: %d created for %d days from %s",
        summary.schedules,
        summary.slots,
        SCHEDULE_DAYS,
        first_day.isoformat(),
    )
    log.info("herbs: %d created in a catalogue of %d", summary.herbs, len(herbs))
    log.info("exams: a catalogue of %d (reference data up to date)", len(EXAMS))
    log.info(
        "sandbox HIS: offline diagnoses for %s, %d days ago", ", ".join(DEMO_HIS_DIAGNOSES), HIS_DIAGNOSIS_AGE.days
    )
    return summary

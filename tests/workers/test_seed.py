"""The demo hospital seed: complete, idempotent, consistent with the sandbox HIS, and never run in production.

The session database is shared with every other test, so these tests look only at the seed's own fixed ids.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from api.services.schedule_rules import Draft, Reference, check_draft
from core.crypto.sm import sm3_hex
from core.passwords import verify_password
from core.settings import Settings
from models.revisit import OfflineDiagnosis
from models.tables import (
    Department,
    Disease,
    Doctor,
    Herb,
    Patient,
    Pharmacist,
    SandboxHisDiagnosis,
    Schedule,
    Slot,
    User,
    UserPermission,
)
from workers import seed

_ID_CARD_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def gb11643_check_digit(first17: str) -> str:
    return "10X98765432"[sum(int(digit) * weight for digit, weight in zip(first17, _ID_CARD_WEIGHTS, strict=True)) % 11]


async def _count(sessions: async_sessionmaker[AsyncSession], column, values) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return (await session.execute(select(func.count()).where(col(column).in_(list(values))))).scalar_one()


async def test_seeding_twice_creates_the_demo_hospital_once(sessions, settings: Settings) -> None:
    await seed.seed_demo(sessions, settings)
    again = await seed.seed_demo(sessions, settings)

    assert again == seed.SeedSummary()
    department_ids = [department.id for department in seed.DEPARTMENTS]
    disease_codes = [code for department in seed.DEPARTMENTS for code, _ in department.diseases]
    assert await _count(sessions, Department.id, department_ids) == 4
    assert await _count(sessions, Disease.code, disease_codes) == 16
    assert await _count(sessions, Doctor.id, [f"doc-{n}" for n in range(1, 7)]) == 6
    assert await _count(sessions, Pharmacist.id, ["ph-1", "ph-2"]) == 2
    assert await _count(sessions, Patient.id, ["pat-demo", "pat-demo2"]) == 2
    usernames = [
        "demo-patient",
        "demo-patient2",
        "demo-doctor",
        *(f"demo-doctor{n}" for n in range(2, 7)),
        "demo-pharmacist",
        "demo-pharmacist2",
        "demo-admin",
        "demo-finance",
    ]
    assert await _count(sessions, User.username, usernames) == 12
    herb_names = [herb["name"] for herb in seed.load_herbs()]
    assert len(herb_names) == 257
    assert await _count(sessions, Herb.name, herb_names) == 257
    schedules = seed.demo_schedules(seed.first_schedule_day(), datetime.now(UTC))
    assert len(schedules) == 6 * 7 * 2
    schedule_ids = [schedule.id for schedule in schedules]
    assert await _count(sessions, Schedule.id, schedule_ids) == len(schedules)
    # Each session generated its six slots once; the second run added none.
    assert await _count(sessions, Slot.schedule_id, schedule_ids) == 6 * 7 * 2 * 8
    assert await _count(sessions, SandboxHisDiagnosis.encounter_id, ["his-enc-demo-1", "his-enc-demo-2"]) == 2


async def test_accounts_roles_and_password(sessions, settings: Settings) -> None:
    await seed.seed_demo(sessions, settings)
    async with sessions() as session:
        users = {
            user.username: user
            for user in (await session.execute(select(User).where(col(User.id).like("u-demo-%")))).scalars()
        }
        doctor = await session.get(Doctor, "doc-1")
        patient = await session.get(Patient, "pat-demo")
    assert users["demo-patient"].role == "patient"
    assert users["demo-doctor"].role == "doctor"
    assert users["demo-pharmacist"].role == "pharmacist"
    assert users["demo-admin"].role == "admin"
    assert users["demo-finance"].role == "finance"
    assert verify_password("Qihuang#2026", users["demo-doctor"].password_hash)
    assert doctor is not None and doctor.user_id == users["demo-doctor"].id
    assert patient is not None and patient.user_id == users["demo-patient"].id


async def test_the_demo_finance_account_is_a_supervisor(sessions, settings: Settings) -> None:
    await seed.seed_demo(sessions, settings)
    async with sessions() as session:
        held = dict(
            (
                await session.execute(
                    select(col(UserPermission.permission), col(UserPermission.granted)).where(
                        col(UserPermission.user_id) == "u-demo-finance"
                    )
                )
            ).all()
        )
    # Finance staff are clerks by role (reconciliation.read); the demo's may also resolve and write off.
    assert held == {"reconciliation.manage": True, "reconciliation.write_off": True}


async def _demo_week(sessions: async_sessionmaker[AsyncSession]) -> tuple[list[Schedule], list[Slot]]:
    first_day = seed.first_schedule_day()
    ids = [schedule.id for schedule in seed.demo_schedules(first_day, datetime.now(UTC))]
    async with sessions() as session:
        schedules = list((await session.execute(select(Schedule).where(col(Schedule.id).in_(ids)))).scalars())
        slots = list((await session.execute(select(Slot).where(col(Slot.schedule_id).in_(ids)))).scalars())
    return schedules, slots


async def test_slots_are_in_business_hours_with_fees_by_title(sessions, settings: Settings) -> None:
    await seed.seed_demo(sessions, settings)
    first_day = seed.first_schedule_day()
    _, all_slots = await _demo_week(sessions)
    # Other tests in the session book demo slots and add extra ones; the seed's own slots are what is checked here.
    slots = [slot for slot in all_slots if not slot.is_extra]
    async with sessions() as session:
        diseases = {disease.code: disease for disease in (await session.execute(select(Disease))).scalars()}
    doctors = {doctor.id: doctor for doctor in seed.DOCTORS}
    assert len(slots) == 672
    for slot in slots:
        local = slot.starts_at.astimezone(seed.SHANGHAI)
        assert local.date() >= first_day
        assert (8, 30) <= (local.hour, local.minute) < (10, 30) or (14, 0) <= (local.hour, local.minute) < (16, 0)
        assert slot.ends_at - slot.starts_at == timedelta(minutes=15)
        doctor = doctors[slot.doctor_id]
        assert slot.fee_fen == seed.SERVICE_FEES_BY_TITLE[doctor.title]["text"]
        assert diseases[slot.disease_code].department_id == doctor.department_id
        assert slot.reserved_for is None
    per_doctor_day = {(slot.doctor_id, slot.starts_at.astimezone(seed.SHANGHAI).date()) for slot in slots}
    assert len(per_doctor_day) == 6 * 7  # 12 slots each: two sessions of six
    tomorrow_morning = datetime.combine(first_day, seed.SESSION_STARTS[0], seed.SHANGHAI)
    first = next(slot for slot in slots if slot.id == f"doc-1-{first_day:%Y%m%d}-0830-0830")
    assert first.starts_at == tomorrow_morning
    assert first.schedule_id == f"doc-1-{first_day:%Y%m%d}-0830"
    assert first.disease_code == "TCM-PW-001"


async def test_demo_sessions_are_ones_the_admin_api_would_publish(sessions, settings: Settings) -> None:
    await seed.seed_demo(sessions, settings)
    schedules, slots = await _demo_week(sessions)
    async with sessions() as session:
        doctors = {doctor.id: doctor for doctor in (await session.execute(select(Doctor))).scalars()}
        diseases = {disease.code: disease for disease in (await session.execute(select(Disease))).scalars()}
    assert doctors["doc-1"].service_fees == {"text": 5000, "phone": 8000, "video": 10000}
    assert doctors["doc-2"].service_fees == {"text": 2000, "video": 4000}
    # Checked as if none of them existed yet: the same rules an admin's import must pass.
    reference = Reference(doctors=doctors, diseases=diseases, busy={}, taken_ids=frozenset())
    hour_before = min(schedule.starts_at for schedule in schedules) - timedelta(hours=1)
    for schedule in schedules:
        start, end = schedule.starts_at.astimezone(seed.SHANGHAI), schedule.ends_at.astimezone(seed.SHANGHAI)
        draft = Draft(
            doctor_id=schedule.doctor_id,
            day=schedule.day,
            start=start.time().replace(tzinfo=None),
            end=end.time().replace(tzinfo=None),
            slot_minutes=schedule.slot_minutes,
            capacity=schedule.capacity,
            service_type=schedule.service_type,
            disease_code=schedule.disease_code,
        )
        assert draft.schedule_id == schedule.id
        assert check_draft(draft, reference, settings.fee_standards_fen, hour_before) == []
        assert schedule.extra_cap == seed.EXTRA_SLOTS_PER_SESSION
        own = [slot for slot in slots if slot.schedule_id == schedule.id]
        assert len(own) == schedule.capacity
        assert all(schedule.starts_at <= slot.starts_at < slot.ends_at <= schedule.ends_at for slot in own)


async def test_sandbox_his_knows_the_demo_patients(sessions, settings: Settings) -> None:
    await seed.seed_demo(sessions, settings)
    async with sessions() as session:
        rows = {row.encounter_id: row for row in (await session.execute(select(SandboxHisDiagnosis))).scalars()}
    first = rows["his-enc-demo-1"]
    assert first.id_card_digest == sm3_hex(seed.DEMO_IDENTITIES["demo-patient"]["id_card_no"].encode())
    assert (first.disease_code, first.disease_name, first.department) == ("TCM-PW-001", "胃痞病", "脾胃病科")
    assert timedelta(days=29) < datetime.now(UTC) - first.diagnosed_at < timedelta(days=31)
    second = rows["his-enc-demo-2"]
    assert second.id_card_digest == sm3_hex(seed.DEMO_IDENTITIES["demo-patient2"]["id_card_no"].encode())
    assert second.disease_name == "不寐"


async def test_his_hook_replaces_the_direct_table_write(sessions, settings: Settings) -> None:
    received: list[tuple[str, OfflineDiagnosis]] = []

    async def hook(id_card_no: str, diagnosis: OfflineDiagnosis) -> None:
        received.append((id_card_no, diagnosis))

    await seed.seed_demo(sessions, settings, his_sandbox_hook=hook)
    assert {(card, diagnosis.disease_code) for card, diagnosis in received} == {
        (seed.DEMO_IDENTITIES["demo-patient"]["id_card_no"], "TCM-PW-001"),
        (seed.DEMO_IDENTITIES["demo-patient2"]["id_card_no"], "TCM-XN-004"),
    }


async def test_refused_in_production(sessions, settings: Settings) -> None:
    with pytest.raises(RuntimeError, match="production"):
        await seed.seed_demo(sessions, settings.model_copy(update={"env": "production"}))


def test_demo_identities_are_valid_id_card_numbers() -> None:
    for identity in seed.DEMO_IDENTITIES.values():
        number = identity["id_card_no"]
        assert len(number) == 18 and number[:17].isdigit()
        assert number[17] == gb11643_check_digit(number[:17])
        assert len(identity["phone"]) == 11


def test_herb_prices_are_stable_and_plausible() -> None:
    assert seed.herb_price_fen_per_100g("甘草", toxic=False) == 2143
    for herb in seed.load_herbs():
        toxic = bool(herb.get("toxic"))
        price = seed.herb_price_fen_per_100g(herb["name"], toxic=toxic)
        if herb["name"] in seed.PRECIOUS_HERBS:
            assert 4_000 <= price <= 60_000
        elif toxic:
            assert 600 <= price <= 9_000
        else:
            assert 200 <= price <= 3_000

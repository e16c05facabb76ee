from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from activities.adapters.errors import AdapterError, AdapterRefusal
from activities.adapters.his import PatientIdentity
from activities.adapters.his.contract import HisContract
from activities.adapters.his.sandbox import SandboxHis
from models import idcard

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def adapter(sessions, settings) -> SandboxHis:  # type: ignore[no-untyped-def]
    return SandboxHis(sessions, settings)


@pytest.fixture
def simulator(adapter: SandboxHis) -> SandboxHis:
    return adapter


class TestSandboxHis(HisContract):
    pass


def patient() -> PatientIdentity:
    return PatientIdentity(name="孙思邈", id_card_no=idcard.random_valid())


def doctor() -> str:
    return f"D{uuid.uuid4().hex[:8].upper()}"


async def register(adapter: SandboxHis, doctor_code: str, starts_at: datetime):  # type: ignore[no-untyped-def]
    return await adapter.register_visit(
        idempotency_key=f"k-{uuid.uuid4().hex}",
        patient=patient(),
        visit_id=f"v-{uuid.uuid4().hex[:12]}",
        doctor_code=doctor_code,
        starts_at=starts_at,
    )


async def test_concurrent_registrations_get_distinct_queue_numbers_from_one(adapter: SandboxHis) -> None:
    code = doctor()
    starts_at = datetime.combine(datetime.now(SHANGHAI).date() + timedelta(days=3), time(9), tzinfo=SHANGHAI)
    registrations = await asyncio.gather(*(register(adapter, code, starts_at) for _ in range(10)))
    assert sorted(r.queue_no for r in registrations) == list(range(1, 11))
    assert len({r.his_registration_no for r in registrations}) == 10


async def test_queues_are_per_shanghai_day(adapter: SandboxHis) -> None:
    code = doctor()
    day = datetime.now(SHANGHAI).date() + timedelta(days=4)
    late = datetime.combine(day, time(23, 30), tzinfo=SHANGHAI).astimezone(UTC)
    next_morning = datetime.combine(day + timedelta(days=1), time(0, 30), tzinfo=SHANGHAI).astimezone(UTC)
    assert late.date() == next_morning.date()  # the same UTC date, but two hospital days
    assert (await register(adapter, code, late)).queue_no == 1
    assert (await register(adapter, code, next_morning)).queue_no == 1
    assert (await register(adapter, doctor(), late)).queue_no == 1


async def test_lookup_ignores_case_and_spaces_of_the_id_card(adapter: SandboxHis) -> None:
    number = "11010519491231002X"  # GB 11643's example; the disease code below keeps this test's rows apart
    code = f"TCM{uuid.uuid4().hex[:6]}"
    await adapter.add_diagnosis(
        id_card_no=number.lower(), disease_code=code, disease_name="眩晕", diagnosed_at=datetime.now(UTC)
    )
    found = await adapter.find_diagnoses(
        patient=PatientIdentity(name="孙思邈", id_card_no=f" {number[:6]} {number[6:]}"),
        disease_code=code,
        since=datetime.now(UTC) - timedelta(days=1),
    )
    assert len(found) == 1 and found[0].diagnosed_at.tzinfo is not None


async def test_cancel(adapter: SandboxHis) -> None:
    registration = await register(adapter, doctor(), datetime.now(UTC) + timedelta(days=1))
    assert not await adapter.is_cancelled(registration.his_registration_no)
    await adapter.cancel_registration(
        idempotency_key="c1-" + registration.his_registration_no, his_registration_no=registration.his_registration_no
    )
    await adapter.cancel_registration(
        idempotency_key="c2-" + registration.his_registration_no, his_registration_no=registration.his_registration_no
    )
    assert await adapter.is_cancelled(registration.his_registration_no)
    with pytest.raises(AdapterRefusal) as refused:
        await adapter.cancel_registration(idempotency_key=f"c-{uuid.uuid4().hex}", his_registration_no="R-NOPE")
    assert refused.value.code == "REGISTRATION_NOT_FOUND"


async def test_queries_fail_when_told_to(sessions, settings) -> None:  # type: ignore[no-untyped-def]
    broken = SandboxHis(sessions, settings.model_copy(update={"sandbox_failure_rate": 1.0}))
    with pytest.raises(AdapterError):
        await broken.find_diagnoses(patient=patient(), disease_code="X", since=datetime.now(UTC))

"""Booking at release time, through the HTTP API with the session's workers: exactly one winner per slot, a fast
definite answer for everyone else, the same answer for the same Idempotency-Key, and no hold that outlives its
window."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlmodel import col
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.adapters.registry import load_adapters
from activities.visits import VisitActivities
from api.hospital_time import hospital_today
from api.services.bookings import Held, visit_input
from bench.booking_rush import RushPatient, create_patients, create_session
from core.crypto.sm import FieldCipher
from models.common import Role
from models.tables import Slot, Visit
from tests.api.helpers import make_department, make_disease, make_user

DISEASE_NAME = "胃痞病"


def bearer(patient: RushPatient, key: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {patient.token}"} | ({"Idempotency-Key": key} if key else {})


@pytest.fixture
async def clinic(sessions):
    """A doctor and a disease of their department: (doctor_id, disease_code)."""
    department_id = await make_department(sessions)
    disease_code = await make_disease(sessions, department_id, DISEASE_NAME)
    _, doctor_id = await make_user(sessions, Role.DOCTOR, department_id=department_id)
    return doctor_id, disease_code


async def patients(stack, disease_code: str, count: int) -> list[RushPatient]:
    cipher = FieldCipher(stack.settings.pii_key, stack.settings.blind_index_key)
    return await create_patients(
        stack.sessions, cipher, count=count, disease=(disease_code, DISEASE_NAME), tag=uuid.uuid4().hex[:8]
    )


async def session_slots(stack, clinic, count: int, days_ahead: int = 20) -> list[str]:
    doctor_id, disease_code = clinic
    return await create_session(
        stack.sessions,
        doctor_id=doctor_id,
        disease_code=disease_code,
        day=hospital_today() + timedelta(days=days_ahead),
        count=count,
        tag=uuid.uuid4().hex[:8],
    )


async def rush(stack, slots: list[str], crowd: list[RushPatient], *, keyed: bool) -> list[httpx.Response]:
    """Everyone presses at once; patient n wants slot n mod len(slots)."""

    async def press(patient: RushPatient, slot_id: str) -> httpx.Response:
        key = str(uuid.uuid4()) if keyed else None
        return await stack.http.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=bearer(patient, key))

    return await asyncio.gather(*(press(p, slots[n % len(slots)]) for n, p in enumerate(crowd)))


async def left_hold(stack, slot_id: str, visit_id: str, patient_id: str, lasting: timedelta) -> None:
    """A hold as a request leaves it when it stops right after PostgreSQL decided (no flow started)."""
    async with stack.sessions() as session, session.begin():
        await session.execute(
            update(Slot)
            .where(col(Slot.id) == slot_id)
            .values(status="held", visit_id=visit_id, patient_id=patient_id, held_until=datetime.now(UTC) + lasting)
        )


async def test_500_patients_on_20_slots_make_exactly_20_bookings(make_stack, clinic) -> None:
    stack = await make_stack()
    slots = await session_slots(stack, clinic, 20)
    answers = await rush(stack, slots, await patients(stack, clinic[1], 500), keyed=False)
    statuses = Counter((a.status_code, a.json().get("code")) for a in answers)
    assert statuses == {(201, None): 20, (409, "SLOT_TAKEN"): 480}, statuses
    winners = {a.json()["slot_id"]: a.json() for a in answers if a.status_code == 201}
    assert sorted(winners) == sorted(slots)
    for answer in answers:
        if answer.status_code == 409:
            assert isinstance(answer.json()["next_free"], list)
    async with stack.sessions() as session:
        rows = (await session.execute(select(Slot).where(col(Slot.id).in_(slots)))).scalars().all()
        assert {row.status for row in rows} == {"held"}
        # Each slot is held for the one patient told 201, by that patient's visit, and has exactly that visit.
        for row in rows:
            assert (row.patient_id, row.visit_id) == (winners[row.id]["patient_id"], winners[row.id]["visit_id"])
    # The answers came before the flows recorded their visits; each records exactly one.
    per_slot: dict[str, int] = {}
    for _ in range(100):
        async with stack.sessions() as session:
            counted = await session.execute(
                select(col(Visit.slot_id), func.count()).where(col(Visit.slot_id).in_(slots)).group_by(Visit.slot_id)
            )
            per_slot = {slot_id: count for slot_id, count in counted.all()}
        if len(per_slot) == len(slots):
            break
        await asyncio.sleep(0.1)
    assert per_slot == dict.fromkeys(slots, 1)


async def test_a_keyed_rush_larger_than_the_pool_answers_everyone(make_stack, clinic) -> None:
    stack = await make_stack()
    slots = await session_slots(stack, clinic, 5, days_ahead=25)
    answers = await rush(stack, slots, await patients(stack, clinic[1], 60), keyed=True)
    assert Counter(a.status_code for a in answers) == {201: 5, 409: 55}


async def test_a_repeat_with_the_same_key_gets_the_same_answer(make_stack, clinic) -> None:
    stack = await make_stack()
    (slot_id,) = await session_slots(stack, clinic, 1)
    winner, loser = await patients(stack, clinic[1], 2)
    key = str(uuid.uuid4())
    first = await stack.http.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=bearer(winner, key))
    assert first.status_code == 201, first.text
    again = await stack.http.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=bearer(winner, key))
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"

    lost_key = str(uuid.uuid4())
    lost = await stack.http.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=bearer(loser, lost_key))
    assert (lost.status_code, lost.json()["code"]) == (409, "SLOT_TAKEN")
    replayed = await stack.http.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=bearer(loser, lost_key))
    assert (replayed.status_code, replayed.json()) == (409, lost.json())
    assert replayed.headers["idempotent-replayed"] == "true"
    # The same key with another request is refused rather than answered for the wrong slot.
    (other_slot,) = await session_slots(stack, clinic, 1, days_ahead=21)
    reused = await stack.http.post("/api/v1/bookings", json={"slot_id": other_slot}, headers=bearer(loser, lost_key))
    assert (reused.status_code, reused.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")


async def test_an_expired_hold_returns_to_stock_and_its_visit_cannot_confirm_it(make_stack, clinic) -> None:
    stack = await make_stack()
    (slot_id,) = await session_slots(stack, clinic, 1, days_ahead=22)
    first, second = await patients(stack, clinic[1], 2)
    lapsed = await stack.http.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=bearer(first))
    assert lapsed.status_code == 201, lapsed.text
    taken = await stack.http.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=bearer(second))
    assert taken.json()["code"] == "SLOT_TAKEN"

    # The first patient's window passes without payment, and whatever should have released the hold never ran
    # (a crashed request or worker): the hold's own expiry puts the slot back.
    async with stack.sessions() as session, session.begin():
        await session.execute(
            update(Slot).where(col(Slot.id) == slot_id).values(held_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    rebooked = await stack.http.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=bearer(second))
    assert rebooked.status_code == 201, rebooked.text
    assert rebooked.json()["visit_id"] != lapsed.json()["visit_id"]

    # The lapsed visit can neither confirm nor release the slot it lost.
    async with stack.sessions() as session:
        slot = await session.get(Slot, slot_id)
    assert slot is not None
    lapsed_input = visit_input(stack.settings, Held(slot=slot, visit_id=lapsed.json()["visit_id"]), first.patient_id)
    activities = VisitActivities(
        stack.sessions,
        FieldCipher(stack.settings.pii_key, stack.settings.blind_index_key),
        load_adapters(stack.sessions, stack.settings).his,
    )
    with pytest.raises(ApplicationError) as lost:
        await ActivityEnvironment().run(activities.confirm_slot, lapsed_input)
    assert lost.value.type == "SLOT_LOST"
    await ActivityEnvironment().run(activities.release_slot, lapsed_input)
    async with stack.sessions() as session:
        slot = await session.get(Slot, slot_id)
    assert slot is not None
    assert (slot.status, slot.patient_id, slot.visit_id) == ("held", second.patient_id, rebooked.json()["visit_id"])


async def test_a_hold_left_by_a_crashed_request_expires(make_stack, clinic) -> None:
    stack = await make_stack()
    (slot_id,) = await session_slots(stack, clinic, 1, days_ahead=23)
    (patient,) = await patients(stack, clinic[1], 1)
    await left_hold(stack, slot_id, f"{slot_id}-crashed", "p-gone", timedelta(seconds=-1))
    booked = await stack.http.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=bearer(patient))
    assert booked.status_code == 201, booked.text


async def test_a_reserved_extra_slot_is_booked_by_its_patient(make_stack, clinic) -> None:
    stack = await make_stack()
    (slot_id,) = await session_slots(stack, clinic, 1, days_ahead=24)
    named, other = await patients(stack, clinic[1], 2)
    async with stack.sessions() as session, session.begin():
        await session.execute(
            update(Slot)
            .where(col(Slot.id) == slot_id)
            .values(is_extra=True, reserved_for=named.patient_id, added_by="u-doc", added_reason="术后复诊加号")
        )
    refused = await stack.http.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=bearer(other))
    assert (refused.status_code, refused.json()["code"]) == (409, "SLOT_RESERVED")
    booked = await stack.http.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=bearer(named))
    assert booked.status_code == 201, booked.text
    # Pressing again without a key finds the patient's own booking rather than a conflict.
    again = await stack.http.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=bearer(named))
    assert (again.status_code, again.json()["visit_id"]) == (201, booked.json()["visit_id"])


async def test_the_winner_is_answered_at_once_and_gets_the_payment_link_when_the_bill_opens(make_stack, clinic) -> None:
    stack = await make_stack()
    (slot_id,) = await session_slots(stack, clinic, 1, days_ahead=26)
    winner, other = await patients(stack, clinic[1], 2)
    booked = await stack.http.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=bearer(winner))
    assert booked.status_code == 201, booked.text
    visit = booked.json()
    assert (visit["stage"], visit["bill_id"], visit["pay_url"]) == (
        "awaiting_payment",
        f"{visit['visit_id']}-reg",
        None,
    )

    payment = await stack.http.get(f"/api/v1/visits/{visit['visit_id']}/payment", headers=bearer(winner))
    assert payment.status_code == 200, payment.text
    assert payment.json()["bill_id"] == visit["bill_id"]
    assert payment.json()["pay_url"].endswith(visit["bill_id"])
    assert datetime.fromisoformat(payment.json()["pay_deadline"]) > datetime.now(UTC)
    # Asked again, the link comes from the flow's state without waiting.
    again = await stack.http.get(f"/api/v1/visits/{visit['visit_id']}/payment", headers=bearer(winner))
    assert again.json()["pay_url"] == payment.json()["pay_url"]
    # Nobody else learns that the visit exists.
    hidden = await stack.http.get(f"/api/v1/visits/{visit['visit_id']}/payment", headers=bearer(other))
    assert (hidden.status_code, hidden.json()["code"]) == (404, "NOT_FOUND")


async def test_an_answer_sent_before_its_flow_started_still_leads_to_payment(make_stack, clinic) -> None:
    """With no wait for the start (as at a rush, when the Temporal server lags), the winner is answered once
    PostgreSQL decided; the payment link comes all the same. A hold whose start never happened (the API stopped
    right after answering) gets its flow when the patient asks for the payment link."""
    stack = await make_stack(booking_start_wait_ms=0)
    answered_slot, lost_slot = await session_slots(stack, clinic, 2, days_ahead=26)
    (patient,) = await patients(stack, clinic[1], 1)
    booked = await stack.http.post("/api/v1/bookings", json={"slot_id": answered_slot}, headers=bearer(patient))
    assert booked.status_code == 201, booked.text
    paying = await stack.http.get(f"/api/v1/visits/{booked.json()['visit_id']}/payment", headers=bearer(patient))
    assert paying.status_code == 200, paying.text
    assert paying.json()["pay_url"]

    lost_visit = f"{lost_slot}-lost"
    await left_hold(stack, lost_slot, lost_visit, patient.patient_id, timedelta(minutes=5))
    recovered = await stack.http.get(f"/api/v1/visits/{lost_visit}/payment", headers=bearer(patient))
    assert recovered.status_code == 200, recovered.text
    assert (recovered.json()["slot_id"], recovered.json()["stage"]) == (lost_slot, "awaiting_payment")
    assert recovered.json()["pay_url"]
    # Someone else's visit id gets no flow started on their behalf.
    (stranger,) = await patients(stack, clinic[1], 1)
    refused = await stack.http.get(f"/api/v1/visits/{lost_visit}/payment", headers=bearer(stranger))
    assert refused.status_code == 404

"""Booking refusals decided by the one booking statement: who may book which slot, and the loser's answer.

No winner here (a win starts a Visit flow, which needs workers: see tests/e2e/test_booking_rush.py); a slot held by
someone else shows that every check before the race passed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import select, update
from sqlmodel import col

from api.services.bookings import prepare_connection
from bench.booking_rush import RushPatient, create_patients
from core.crypto.sm import FieldCipher
from core.settings import Settings
from models.common import Role
from models.tables import Department, Doctor, IdempotencyRecord, Patient, Schedule, Slot
from tests.api.helpers import login, make_department, make_disease, make_slot, make_user, unique


def bearer(patient: RushPatient) -> dict[str, str]:
    return {"Authorization": f"Bearer {patient.token}"}


class Clinic:
    """One doctor with a disease, and helpers to make patients who may book its slots."""

    def __init__(self, sessions, settings: Settings, doctor_id: str, disease_code: str) -> None:
        self.sessions = sessions
        self.cipher = FieldCipher(settings.pii_key, settings.blind_index_key)
        self.doctor_id = doctor_id
        self.disease_code = disease_code

    async def patients(self, count: int = 1, disease_code: str | None = None) -> list[RushPatient]:
        disease = (disease_code or self.disease_code, "胃痞病")
        return await create_patients(self.sessions, self.cipher, count=count, disease=disease, tag=uuid.uuid4().hex[:8])

    async def patient(self) -> RushPatient:
        return (await self.patients())[0]

    async def slot(self, *, hours: float = 48, **kwargs) -> str:
        starts_at = datetime.now(UTC) + timedelta(hours=hours)
        return await make_slot(self.sessions, self.doctor_id, self.disease_code, starts_at, **kwargs)

    async def taken_slot(self) -> str:
        return await self.slot(status="held", held_until=datetime.now(UTC) + timedelta(minutes=10))


@pytest.fixture
async def clinic(sessions, settings) -> Clinic:
    department_id = await make_department(sessions)
    disease_code = await make_disease(sessions, department_id)
    _, doctor_id = await make_user(sessions, Role.DOCTOR, department_id=department_id)
    assert doctor_id is not None
    return Clinic(sessions, settings, doctor_id, disease_code)


async def book(api, patient: RushPatient, slot_id: str, key: str | None = None):
    headers = bearer(patient) | ({"Idempotency-Key": key} if key else {})
    return await api.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=headers)


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    return body


async def test_a_taken_slot_answers_slot_taken_with_the_doctors_next_free_slots(api, clinic) -> None:
    taken = await clinic.taken_slot()
    later = await clinic.slot(hours=72)
    sooner = await clinic.slot(hours=50)
    await clinic.slot(hours=60, status="closed")
    await clinic.slot(hours=-1)  # in the past
    other_patient = await clinic.patient()
    await clinic.slot(hours=55)
    lapsed = await clinic.slot(hours=58, status="held", held_until=datetime.now(UTC) - timedelta(minutes=1))
    await clinic.slot(hours=51, status="held", held_until=datetime.now(UTC) + timedelta(minutes=10))
    reserved = await clinic.slot(hours=56)
    async with clinic.sessions() as session, session.begin():
        await session.execute(
            update(Slot).where(col(Slot.id) == reserved).values(is_extra=True, reserved_for=other_patient.patient_id)
        )
    body = assert_problem(await book(api, await clinic.patient(), taken), 409, "SLOT_TAKEN")
    free = [item["slot_id"] for item in body["next_free"]]
    # Soonest first, a slot whose hold lapsed among them; neither the slot asked for, nor a held, closed, past or
    # reserved-for-another slot.
    assert free[0] == sooner and later in free and lapsed in free
    assert taken not in free and reserved not in free
    assert len(free) == 4
    assert body["detail"] == "该号源已被其他患者预约，请选择其他号源"


async def test_an_extra_slot_reserved_for_a_named_patient_refuses_everyone_else(api, clinic) -> None:
    named, other = await clinic.patients(2)
    slot_id = await clinic.slot()
    async with clinic.sessions() as session, session.begin():
        await session.execute(
            update(Slot)
            .where(col(Slot.id) == slot_id)
            .values(is_extra=True, reserved_for=named.patient_id, added_by="u-doc", added_reason="复诊加号")
        )
    assert_problem(await book(api, other, slot_id), 409, "SLOT_RESERVED")


async def test_closed_cancelled_and_past_slots_are_refused(api, clinic) -> None:
    patient = await clinic.patient()
    closed = await clinic.slot(status="closed")
    assert_problem(await book(api, patient, closed), 409, "SLOT_CLOSED")
    past = await clinic.slot(hours=-1)
    body = assert_problem(await book(api, patient, past), 409, "SLOT_CLOSED")
    assert "已过" in body["detail"]
    # A session on leave (停诊) whose slots the schedule flow has not closed yet.
    day = date.today() + timedelta(days=3)
    starts = datetime.now(UTC) + timedelta(days=3)
    schedule_id = unique("sch")
    async with clinic.sessions() as session, session.begin():
        session.add(
            Schedule(
                id=schedule_id,
                doctor_id=clinic.doctor_id,
                day=day,
                starts_at=starts,
                ends_at=starts + timedelta(hours=1),
                slot_minutes=15,
                capacity=4,
                fee_fen=5000,
                disease_code=clinic.disease_code,
                status="cancelled",
            )
        )
    on_leave = await clinic.slot(hours=72)
    async with clinic.sessions() as session, session.begin():
        await session.execute(update(Slot).where(col(Slot.id) == on_leave).values(schedule_id=schedule_id))
    assert_problem(await book(api, patient, on_leave), 409, "SLOT_CLOSED")
    async with clinic.sessions() as session:
        assert (await session.get(Slot, on_leave)).status == "open"  # type: ignore[union-attr]


async def test_identity_and_eligibility_are_required(api, clinic) -> None:
    slot_id = await clinic.slot()
    unverified = await clinic.patient()
    async with clinic.sessions() as session, session.begin():
        await session.execute(update(Patient).where(col(Patient.id) == unverified.patient_id).values(verified_at=None))
    assert_problem(await book(api, unverified, slot_id), 403, "IDENTITY_NOT_VERIFIED")
    department_id = await make_department(clinic.sessions)
    other_disease = await make_disease(clinic.sessions, department_id)
    (not_eligible,) = await clinic.patients(1, disease_code=other_disease)
    body = assert_problem(await book(api, not_eligible, slot_id), 403, "NOT_ELIGIBLE_FOR_REVISIT")
    assert body["disease_code"] == clinic.disease_code
    async with clinic.sessions() as session:
        slot = await session.get(Slot, slot_id)
        assert slot is not None and slot.status == "open" and slot.patient_id is None


async def test_unknown_slot_is_404_and_bad_input_is_422(api, clinic) -> None:
    patient = await clinic.patient()
    assert_problem(await book(api, patient, "no-such-slot"), 404, "NOT_FOUND")
    assert_problem(await book(api, patient, ""), 422, "VALIDATION_FAILED")
    assert_problem(await book(api, patient, "x" * 61), 422, "VALIDATION_FAILED")
    assert_problem(await book(api, patient, "x" * 60), 404, "NOT_FOUND")  # as long as any slot id may be
    assert_problem(await book(api, patient, "slot\u0000"), 400, "INVALID_CHARACTERS")


async def test_a_booking_that_is_not_well_formed_gets_the_apps_usual_answer(api, clinic) -> None:
    """Well-formed bookings take a lean path past FastAPI's routing (`BookingFastPath`); anything else is answered by
    FastAPI as every route's is."""
    patient = await clinic.patient()
    slot_id = await clinic.taken_slot()
    path, headers = "/api/v1/bookings", bearer(patient)
    json_headers = headers | {"Content-Type": "application/json"}
    assert_problem(await api.post(path, content=b'{"slot_id": ', headers=json_headers), 400, "MALFORMED_JSON")
    assert_problem(await api.post(path, content=b"[]", headers=json_headers), 422, "VALIDATION_FAILED")
    assert_problem(await api.post(path, json={"slot": slot_id}, headers=headers), 422, "VALIDATION_FAILED")
    too_large = {"slot_id": slot_id, "note": "x" * 2_000_000}
    assert_problem(await api.post(path, json=too_large, headers=headers), 413, "PAYLOAD_TOO_LARGE")
    # The same booking sent as a form is not a JSON body: FastAPI's answer, not a booking.
    form = await api.post(path, data={"slot_id": slot_id}, headers=headers)
    assert form.status_code == 422
    # JSON with a charset is JSON, and the lean path answers it like FastAPI would.
    charset = headers | {"Content-Type": "application/json; charset=utf-8"}
    assert_problem(
        await api.post(path, content=f'{{"slot_id": "{slot_id}"}}'.encode(), headers=charset), 409, "SLOT_TAKEN"
    )


async def test_a_losers_answer_is_replayed_for_its_idempotency_key(api, clinic) -> None:
    patient = await clinic.patient()
    taken = await clinic.taken_slot()
    key = str(uuid.uuid4())
    first = await book(api, patient, taken, key)
    assert_problem(first, 409, "SLOT_TAKEN")
    # Even once the slot is free again, the same key gets the same answer.
    async with clinic.sessions() as session, session.begin():
        await session.execute(update(Slot).where(col(Slot.id) == taken).values(status="closed", held_until=None))
    again = await book(api, patient, taken, key)
    assert again.status_code == 409
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    fresh = await book(api, patient, taken, str(uuid.uuid4()))
    assert_problem(fresh, 409, "SLOT_CLOSED")


async def test_only_a_signed_in_patient_books_and_a_refused_caller_claims_nothing(api, clinic) -> None:
    """Who is asking is decided in the booking statement itself: a missing or dead token and a staff token are refused
    before the Idempotency-Key is claimed or the slot is touched."""
    slot_id = await clinic.slot()
    key = str(uuid.uuid4())
    unauthenticated = await api.post("/api/v1/bookings", json={"slot_id": slot_id}, headers={"Idempotency-Key": key})
    assert_problem(unauthenticated, 401, "UNAUTHORIZED")
    dead = {"Authorization": "Bearer not-a-live-token", "Idempotency-Key": key}
    assert_problem(await api.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=dead), 401, "UNAUTHORIZED")
    username, _ = await make_user(clinic.sessions, Role.DOCTOR, department_id=await make_department(clinic.sessions))
    doctor = await login(api, username) | {"Idempotency-Key": key}
    refused = assert_problem(
        await api.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=doctor), 403, "FORBIDDEN"
    )
    assert "患者" in refused["detail"]
    async with clinic.sessions() as session:
        slot = await session.get(Slot, slot_id)
        assert slot is not None and slot.status == "open" and slot.patient_id is None
        assert (
            await session.execute(select(IdempotencyRecord).where(col(IdempotencyRecord.key) == key))
        ).first() is None
    # The key was never claimed: a patient may still use it, and a repeat with another body is refused.
    patient = await clinic.patient()
    assert_problem(await book(api, patient, slot_id, "not a valid key"), 400, "INVALID_IDEMPOTENCY_KEY")
    taken = await clinic.taken_slot()
    assert_problem(await book(api, patient, taken, key), 409, "SLOT_TAKEN")
    assert_problem(await book(api, patient, slot_id, key), 422, "IDEMPOTENCY_KEY_REUSED")


async def test_preparing_a_connection_books_nothing_and_leaves_the_types_known(database_url, settings, clinic) -> None:
    """Each raw-pool connection runs the booking statement once as it opens (for a token nobody has): nothing is
    claimed, held or touched, and the free slots' array types are known before the first real attempt."""
    slot_id = await clinic.slot()
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        claims = await connection.fetchval("SELECT count(*) FROM idempotency_records")
        await prepare_connection(connection, settings)
        assert await connection.fetchval("SELECT count(*) FROM idempotency_records") == claims
        assert await connection.fetchval("SELECT status FROM slots WHERE id = $1", slot_id) == "open"
        # asyncpg learns a type the first time a statement returns it; the prepared connection has learnt these.
        assert connection._protocol.get_settings().get_data_codec(1015) is not None  # varchar[]
        assert connection._protocol.get_settings().get_data_codec(1185) is not None  # timestamptz[]
    finally:
        await connection.close()


async def test_a_slot_of_a_department_no_longer_offered_is_refused(api, clinic) -> None:
    """Disabled (禁用科室), or its 诊疗科目 no longer registered: the department is out of the public catalogue, and a
    patient who kept the slot's id is refused too."""
    patient = await clinic.patient()
    slot_id = await clinic.taken_slot()  # refused before the slot itself is looked at
    async with clinic.sessions() as session:
        department = (
            await session.execute(
                select(Department)
                .join(Doctor, col(Doctor.department_id) == col(Department.id))
                .where(col(Doctor.id) == clinic.doctor_id)
            )
        ).scalar_one()
    for change in ({"active": False}, {"subject_code": "99.99"}):
        async with clinic.sessions() as session, session.begin():
            await session.execute(update(Department).where(col(Department.id) == department.id).values(**change))
        body = assert_problem(await book(api, patient, slot_id), 409, "DEPARTMENT_UNAVAILABLE")
        assert "next_free" not in body
        async with clinic.sessions() as session, session.begin():
            restore = {"active": True, "subject_code": department.subject_code}
            await session.execute(update(Department).where(col(Department.id) == department.id).values(**restore))
    # Offered again, the same attempt gets as far as the slot, which someone else holds.
    assert_problem(await book(api, patient, slot_id), 409, "SLOT_TAKEN")

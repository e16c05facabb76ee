"""A doctor books for a patient who cannot use the app (8.1.3.4): the doctor's own slots only, the patient's standing
checked as when they book themselves, the slot decided the same way, and who booked for whom audited."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlmodel import col

from api.hospital_time import hospital_today
from bench.booking_rush import RushPatient, create_patients, create_session
from core.crypto.sm import FieldCipher
from models.common import Role
from models.tables import AuditEvent, Patient
from tests.api.helpers import login, make_department, make_disease, make_user

DISEASE_NAME = "胃痞病"


async def doctor_with_slots(
    stack, count: int, disease_code: str | None = None
) -> tuple[dict[str, str], str, list[str]]:
    """A doctor who can sign in, with a session of `count` slots for a disease of their department (a new one unless
    given): (headers, disease code, slot ids)."""
    department_id = await make_department(stack.sessions)
    disease_code = disease_code or await make_disease(stack.sessions, department_id, DISEASE_NAME)
    username = f"doc-{uuid.uuid4().hex[:8]}"
    _, doctor_id = await make_user(stack.sessions, Role.DOCTOR, username=username, department_id=department_id)
    assert doctor_id is not None
    slots = await create_session(
        stack.sessions,
        doctor_id=doctor_id,
        disease_code=disease_code,
        day=hospital_today() + timedelta(days=27),
        count=count,
        tag=uuid.uuid4().hex[:8],
    )
    return await login(stack.http, username), disease_code, slots


async def patients(stack, disease_code: str, count: int) -> list[RushPatient]:
    cipher = FieldCipher(stack.settings.pii_key, stack.settings.blind_index_key)
    return await create_patients(
        stack.sessions, cipher, count=count, disease=(disease_code, DISEASE_NAME), tag=uuid.uuid4().hex[:8]
    )


def book_for(stack, headers: dict[str, str], patient_id: str, slot_id: str, key: str | None = None):
    extra = {"Idempotency-Key": key} if key else {}
    return stack.http.post(
        f"/api/v1/patients/{patient_id}/bookings", json={"slot_id": slot_id}, headers=headers | extra
    )


async def test_a_doctor_books_their_own_slot_for_a_patient_who_then_pays(make_stack) -> None:
    stack = await make_stack()
    doctor, disease_code, (slot_id, _) = await doctor_with_slots(stack, 2)
    (patient,) = await patients(stack, disease_code, 1)
    key = str(uuid.uuid4())
    booked = await book_for(stack, doctor, patient.patient_id, slot_id, key)
    assert booked.status_code == 201, booked.text
    visit = booked.json()
    assert (visit["patient_id"], visit["slot_id"], visit["stage"]) == (patient.patient_id, slot_id, "awaiting_payment")
    again = await book_for(stack, doctor, patient.patient_id, slot_id, key)
    assert (again.status_code, again.json()) == (201, visit)

    # The patient (or whoever helps them at home) pays in the app as after booking themselves.
    paying = await stack.http.get(
        f"/api/v1/visits/{visit['visit_id']}/payment", headers={"Authorization": f"Bearer {patient.token}"}
    )
    assert paying.status_code == 200, paying.text
    assert paying.json()["pay_url"]
    async with stack.sessions() as session:
        events = (
            (await session.execute(select(AuditEvent).where(col(AuditEvent.subject_id) == visit["visit_id"])))
            .scalars()
            .all()
        )
    assert [(event.action, event.detail["patient_id"]) for event in events] == [
        ("booking.assisted", patient.patient_id)
    ]

    # Someone else's taken slot is refused like anyone's attempt.
    (other,) = await patients(stack, disease_code, 1)
    taken = await book_for(stack, doctor, other.patient_id, slot_id)
    assert (taken.status_code, taken.json()["code"]) == (409, "SLOT_TAKEN")


async def test_assisted_booking_keeps_every_rule_of_booking(make_stack) -> None:
    stack = await make_stack()
    doctor, disease_code, (slot_id,) = await doctor_with_slots(stack, 1)
    other_doctor, _, (other_slot,) = await doctor_with_slots(stack, 1, disease_code)
    unverified, patient = await patients(stack, disease_code, 2)
    async with stack.sessions() as session, session.begin():
        await session.execute(update(Patient).where(col(Patient.id) == unverified.patient_id).values(verified_at=None))

    refused = await book_for(stack, doctor, unverified.patient_id, slot_id)
    assert (refused.status_code, refused.json()["code"]) == (403, "IDENTITY_NOT_VERIFIED")
    not_theirs = await book_for(stack, other_doctor, patient.patient_id, slot_id)
    assert (not_theirs.status_code, not_theirs.json()["code"]) == (403, "FORBIDDEN")
    unknown = await book_for(stack, doctor, "p-nobody", slot_id)
    assert unknown.status_code == 404
    no_slot = await book_for(stack, doctor, patient.patient_id, "slot-nowhere")
    assert no_slot.status_code == 404
    by_patient = await book_for(stack, {"Authorization": f"Bearer {patient.token}"}, patient.patient_id, other_slot)
    assert (by_patient.status_code, by_patient.json()["code"]) == (403, "FORBIDDEN")

    # An administrator may book any doctor's slot.
    admin_name = f"adm-{uuid.uuid4().hex[:8]}"
    await make_user(stack.sessions, Role.ADMIN, username=admin_name)
    by_admin = await book_for(stack, await login(stack.http, admin_name), patient.patient_id, other_slot)
    assert by_admin.status_code == 201, by_admin.text

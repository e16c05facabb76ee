"""Database steps of a visit against PostgreSQL: confirming the paid slot (and naming its doctor for the booking
notice), and recording a no-show once, audited (8.6.8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import col
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.adapters.registry import load_adapters
from activities.visits import VisitActivities
from api.services.bookings import Held, visit_input
from core.crypto.sm import FieldCipher
from models.common import Role
from models.tables import AuditEvent, NoShow, Slot
from tests.api.helpers import make_department, make_disease, make_slot, make_user, unique
from workflows.visit import booked_state


@pytest.fixture
def steps(sessions, settings) -> VisitActivities:
    cipher = FieldCipher(settings.pii_key, settings.blind_index_key)
    return VisitActivities(sessions, cipher, load_adapters(sessions, settings).his)


async def held_visit(sessions, settings):  # type: ignore[no-untyped-def]
    department_id = await make_department(sessions)
    disease_code = await make_disease(sessions, department_id)
    _, doctor_id = await make_user(sessions, Role.DOCTOR, department_id=department_id, display_name="张仲景")
    assert doctor_id is not None
    _, patient_id = await make_user(sessions, Role.PATIENT)
    assert patient_id is not None
    visit_id = unique("visit")
    slot_id = await make_slot(
        sessions,
        doctor_id,
        disease_code,
        datetime.now(UTC) + timedelta(days=1),
        status="held",
        held_until=datetime.now(UTC) + timedelta(minutes=5),
    )
    async with sessions() as session, session.begin():
        slot = await session.get(Slot, slot_id)
        assert slot is not None
        slot.visit_id, slot.patient_id = visit_id, patient_id
    async with sessions() as session:
        slot = await session.get(Slot, slot_id)
    assert slot is not None
    return visit_input(settings, Held(slot=slot, visit_id=visit_id), patient_id)


async def test_confirming_the_paid_slot_names_its_doctor(steps, sessions, settings) -> None:
    visit = await held_visit(sessions, settings)
    assert await ActivityEnvironment().run(steps.confirm_slot, visit) == "张仲景"
    async with sessions() as session:
        slot = await session.get(Slot, visit.slot_id)
    assert slot is not None and (slot.status, slot.held_until) == ("booked", None)
    # Another visit cannot confirm the slot this one holds.
    with pytest.raises(ApplicationError) as lost:
        await ActivityEnvironment().run(steps.confirm_slot, visit.model_copy(update={"visit_id": unique("other")}))
    assert lost.value.type == "SLOT_LOST"


async def test_a_no_show_is_recorded_and_audited_once(steps, sessions, settings) -> None:
    visit = await held_visit(sessions, settings)
    await ActivityEnvironment().run(steps.record_visit, visit, booked_state(visit))
    await ActivityEnvironment().run(steps.record_no_show, visit)
    await ActivityEnvironment().run(steps.record_no_show, visit)  # a retried step
    async with sessions() as session:
        rows = (await session.execute(select(NoShow).where(col(NoShow.visit_id) == visit.visit_id))).scalars().all()
        events = (
            (await session.execute(select(AuditEvent).where(col(AuditEvent.subject_id) == visit.visit_id)))
            .scalars()
            .all()
        )
    assert [row.patient_id for row in rows] == [visit.patient_id]
    assert [(event.action, event.detail["patient_id"]) for event in events] == [("visit.no_show", visit.patient_id)]

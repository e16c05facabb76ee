"""续方: the visit's doctor lists the patient's earlier prescriptions that may be renewed and renews one, which
starts a new prescription flow with the same items (real workflows, fake activities)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest_asyncio
from sqlalchemy import select
from sqlmodel import col
from temporalio import activity
from temporalio.client import Client

from core.crypto.sm import FieldCipher
from models import idcard
from models.common import Role
from models.prescription import PrescriptionDraft, PrescriptionInput, PrescriptionState, RxItem
from models.tables import AuditEvent, Patient, Prescription, Visit
from models.visit import AcceptVisit, VisitStage
from tests.api.helpers import login, make_department, make_disease, make_slot, make_user, unique
from tests.workflows.conftest import Harness
from tests.workflows.fakes import FakeWorld
from tests.workflows.test_prescription import DRAFT
from tests.workflows.test_visit import book, pay, visit_input, wait_stage
from workers.worker import build_workers
from workflows.prescription import PrescriptionWorkflow, prescription_workflow_id
from workflows.visit import VisitWorkflow

BANNED = PrescriptionDraft(
    diagnosis="胃痞病", items=[RxItem(herb="罂粟壳", dose_g=6), RxItem(herb="白术", dose_g=12)], doses=7
)


class RecordingWorld(FakeWorld):
    """Keeps what each prescription flow was started with."""

    def __init__(self) -> None:
        super().__init__()
        self.rx_inputs: list[PrescriptionInput] = []

    @activity.defn(name="record_prescription")
    async def record_prescription(
        self, prescription: PrescriptionInput, state: PrescriptionState, draft: PrescriptionDraft
    ) -> None:
        self._seen()
        self.rx_inputs.append(prescription)


@dataclass
class Patient2:
    patient_id: str
    doctor_id: str
    doctor_user: str
    disease: str
    other_disease: str
    visit_id: str


@pytest_asyncio.fixture
async def harness(client: Client) -> AsyncIterator[Harness]:
    world = RecordingWorld()
    queue = f"api-renew-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        for worker in build_workers(client, queue, world.activity_sets()):
            await stack.enter_async_context(worker)
        yield Harness(client=client, queue=queue, world=world)


async def _visit(sessions, patient_id: str, doctor_id: str, disease: str, stage: str, days_ago: int) -> str:
    starts_at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days_ago)
    slot_id = await make_slot(sessions, doctor_id, disease, starts_at, status="booked")
    visit_id = unique("visit")
    async with sessions() as session, session.begin():
        session.add(
            Visit(
                id=visit_id,
                patient_id=patient_id,
                doctor_id=doctor_id,
                slot_id=slot_id,
                disease_code=disease,
                stage=stage,
                fee_fen=5000,
                starts_at=starts_at,
            )
        )
    return visit_id


async def _rx(sessions, visit_id: str, p: Patient2, draft: PrescriptionDraft, stage: str = "completed") -> str:
    rx_id = f"{visit_id}-rx{uuid.uuid4().hex[:6]}"
    async with sessions() as session, session.begin():
        session.add(
            Prescription(
                id=rx_id,
                visit_id=visit_id,
                patient_id=p.patient_id,
                doctor_id=p.doctor_id,
                stage=stage,
                draft=draft.model_dump(mode="json"),
            )
        )
    return rx_id


@pytest_asyncio.fixture
async def patient(sessions, settings) -> Patient2:
    department_id = await make_department(sessions)
    disease = await make_disease(sessions, department_id, "胃痞病")
    other_disease = await make_disease(sessions, department_id, "不寐")
    _, patient_id = await make_user(sessions, Role.PATIENT)
    doctor_user, doctor_id = await make_user(sessions, Role.DOCTOR, department_id=department_id)
    assert patient_id is not None and doctor_id is not None
    cipher = FieldCipher(settings.pii_key, settings.blind_index_key)
    async with sessions() as session, session.begin():
        row = await session.get(Patient, patient_id)
        assert row is not None
        row.id_card_enc = cipher.encrypt("id_card", idcard.make(born=date(1980, 1, 1)))
    visit_id = await _visit(sessions, patient_id, doctor_id, disease, "in_consult", 0)
    return Patient2(patient_id, doctor_id, doctor_user, disease, other_disease, visit_id)


async def test_the_doctor_lists_completed_prescriptions_of_the_disease_that_pass_the_check_now(
    api, sessions, patient: Patient2
) -> None:
    earlier = await _visit(sessions, patient.patient_id, patient.doctor_id, patient.disease, "finished", 30)
    older = await _visit(sessions, patient.patient_id, patient.doctor_id, patient.disease, "finished", 60)
    elsewhere = await _visit(sessions, patient.patient_id, patient.doctor_id, patient.other_disease, "finished", 20)
    # Written in the order of the visits: the list is newest first.
    clean_older = await _rx(sessions, older, patient, DRAFT.model_copy(update={"doses": 5}))
    clean = await _rx(sessions, earlier, patient, DRAFT)
    await _rx(sessions, older, patient, BANNED)
    await _rx(sessions, earlier, patient, DRAFT, stage="void")
    await _rx(sessions, elsewhere, patient, DRAFT)
    auth = await login(api, patient.doctor_user)

    path = f"/api/v1/patients/{patient.patient_id}/renewable-prescriptions"
    answer = await api.get(path, headers=auth)
    assert answer.status_code == 200, answer.text
    listed = answer.json()
    assert [r["prescription_id"] for r in listed] == [clean, clean_older]
    assert listed[0]["check"]["verdict"] == "pass" and listed[0]["draft"]["items"][0]["herb"] == "党参"
    assert (await api.get(path, params={"disease": patient.disease}, headers=auth)).json() == listed

    # Only the disease of the open visit, and only for its doctor.
    other = await api.get(path, params={"disease": patient.other_disease}, headers=auth)
    assert other.status_code == 404
    stranger, _ = await make_user(sessions, Role.DOCTOR)
    assert (await api.get(path, headers=await login(api, stranger))).status_code == 404


async def test_renewing_refuses_what_does_not_qualify(api, sessions, patient: Patient2) -> None:
    earlier = await _visit(sessions, patient.patient_id, patient.doctor_id, patient.disease, "finished", 30)
    elsewhere = await _visit(sessions, patient.patient_id, patient.doctor_id, patient.other_disease, "finished", 20)
    banned = await _rx(sessions, earlier, patient, BANNED)
    unfinished = await _rx(sessions, earlier, patient, DRAFT, stage="awaiting_payment")
    other_disease = await _rx(sessions, elsewhere, patient, DRAFT)
    auth = await login(api, patient.doctor_user)
    path = f"/api/v1/visits/{patient.visit_id}/prescriptions/renew"

    for source in (banned, unfinished, other_disease):
        refused = await api.post(path, json={"prescription_id": source}, headers=auth)
        assert refused.status_code == 409 and refused.json()["code"] == "RX_NOT_RENEWABLE", refused.text
    assert "罂粟壳" in (await api.post(path, json={"prescription_id": banned}, headers=auth)).json()["detail"]
    missing = await api.post(path, json={"prescription_id": "rx-nowhere"}, headers=auth)
    assert missing.status_code == 404


async def test_renewing_starts_a_new_prescription_with_the_same_items(
    api, sessions, patient: Patient2, harness: Harness
) -> None:
    earlier = await _visit(sessions, patient.patient_id, patient.doctor_id, patient.disease, "finished", 30)
    source = await _rx(sessions, earlier, patient, DRAFT)
    # The current visit's flow, in consult with this doctor.
    visit = visit_input().model_copy(
        update={"visit_id": patient.visit_id, "patient_id": patient.patient_id, "doctor_id": patient.doctor_id}
    )
    _, handle = await book(harness, visit, patient_id=patient.patient_id)
    await pay(harness, visit)
    await wait_stage(handle, VisitStage.WAITING_DOCTOR)
    await handle.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id=patient.doctor_id))
    auth = await login(api, patient.doctor_user)

    try:
        answer = await api.post(
            f"/api/v1/visits/{patient.visit_id}/prescriptions/renew",
            json={"prescription_id": source},
            headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert answer.status_code == 201, answer.text
        renewed = answer.json()
        assert renewed["renewed_from"] == source and renewed["prescription_id"] != source
        rx = harness.client.get_workflow_handle(prescription_workflow_id(renewed["prescription_id"]))
        assert await rx.query(PrescriptionWorkflow.draft) == DRAFT
        assert isinstance(harness.world, RecordingWorld)
        assert {i.renewed_from for i in harness.world.rx_inputs} == {source}
        async with sessions() as session:
            audited = await session.scalar(
                select(col(AuditEvent.detail)).where(
                    col(AuditEvent.action) == "prescription.renewed",
                    col(AuditEvent.subject_id) == renewed["prescription_id"],
                )
            )
        assert audited == {"renewed_from": source}
    finally:
        await handle.terminate("test done")

"""The pharmacists' review queue: longest waiting first with the SLA flag, and claims through the prescription's
flow (real workflows, fake activities), only for pharmacists on duty."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from temporalio.client import Client

from models.common import Role
from models.prescription import PrescriptionInput, SignPrescription
from tests.api.consult_helpers import make_consult_visit, make_prescription
from tests.api.helpers import login, make_user
from tests.workflows.fakes import FakeWorld
from tests.workflows.test_prescription import DRAFT, checked
from workers.worker import build_workers
from workflows.prescription import PrescriptionWorkflow, prescription_workflow_id


@pytest_asyncio.fixture
async def queue(client: Client) -> AsyncIterator[str]:
    name = f"api-review-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        for worker in build_workers(client, name, FakeWorld().activity_sets()):
            await stack.enter_async_context(worker)
        yield name


async def _prescription(sessions, visit, stage: str, submitted_ago: timedelta | None, **extra) -> str:
    submitted_at = datetime.now(UTC) - submitted_ago if submitted_ago is not None else None
    return await make_prescription(sessions, visit, stage, DRAFT, submitted_at=submitted_at, **extra)


async def _pharmacist(api, sessions, on_duty: bool = True) -> tuple[str, dict[str, str]]:
    user, pharmacist_id = await make_user(sessions, Role.PHARMACIST)
    assert pharmacist_id is not None
    auth = await login(api, user)
    if on_duty:
        assert (await api.post("/api/v1/pharmacists/me/duty", json={"on_duty": True}, headers=auth)).status_code == 200
    return pharmacist_id, auth


async def test_the_queue_puts_the_longest_waiting_first_and_flags_those_past_the_sla(api, sessions, settings) -> None:
    visit = await make_consult_visit(sessions)
    sla = timedelta(seconds=settings.review_sla_s)
    fresh = await _prescription(sessions, visit, "awaiting_review", timedelta(minutes=1))
    overdue = await _prescription(
        sessions, visit, "awaiting_review", sla + timedelta(minutes=5), forced=True, forced_reason="病情需要",
        review_reason="剂量偏大",
    )  # fmt: skip
    middle = await _prescription(sessions, visit, "awaiting_review", sla - timedelta(minutes=5))
    draft = await _prescription(sessions, visit, "draft", None)
    _, auth = await _pharmacist(api, sessions, on_duty=False)

    answer = await api.get("/api/v1/prescriptions", params={"stage": "awaiting_review", "limit": 200}, headers=auth)
    assert answer.status_code == 200
    mine = [p for p in answer.json() if p["visit_id"] == visit.visit_id]
    assert [p["prescription_id"] for p in mine] == [overdue, middle, fresh]
    assert [p["overdue"] for p in mine] == [True, False, False]
    assert mine[0]["waiting_s"] >= settings.review_sla_s + 300 and 60 <= mine[2]["waiting_s"] < 120
    assert (mine[0]["forced"], mine[0]["forced_reason"], mine[0]["review_reason"]) == (True, "病情需要", "剂量偏大")
    assert draft not in {p["prescription_id"] for p in answer.json()}

    everything = (await api.get("/api/v1/prescriptions", params={"limit": 200}, headers=auth)).json()
    listed = {p["prescription_id"]: p for p in everything}
    assert listed[draft]["waiting_s"] is None and listed[draft]["overdue"] is False


async def test_claiming_needs_duty_and_keeps_other_pharmacists_off(api, sessions, client: Client, queue: str) -> None:
    visit = await make_consult_visit(sessions)
    rx_id = await _prescription(sessions, visit, "awaiting_review", timedelta(minutes=1))
    rx = PrescriptionInput(
        prescription_id=rx_id,
        visit_id=visit.visit_id,
        patient_id=visit.patient_id,
        doctor_id=visit.doctor_id,
        draft=DRAFT,
        channel="sandbox",
        review_sla_s=600,
        pay_window_s=600,
        delivery_sla_s=3600,
    )
    _, off_duty = await _pharmacist(api, sessions, on_duty=False)
    first_id, first = await _pharmacist(api, sessions)
    _, second = await _pharmacist(api, sessions)
    handle = await client.start_workflow(
        PrescriptionWorkflow.run, rx, id=prescription_workflow_id(rx_id), task_queue=queue
    )
    try:
        await checked(handle)
        await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id=visit.doctor_id))

        refused = await api.post(f"/api/v1/prescriptions/{rx_id}/review/claim", headers=off_duty)
        assert refused.status_code == 409 and refused.json()["code"] == "NOT_ON_DUTY"

        claimed = await api.post(f"/api/v1/prescriptions/{rx_id}/review/claim", headers=first)
        assert claimed.status_code == 200 and claimed.json()["claimed_by"] == first_id
        taken = await api.post(f"/api/v1/prescriptions/{rx_id}/review/claim", headers=second)
        assert taken.status_code == 409 and taken.json()["code"] == "RX_CLAIMED"
        assert taken.json()["detail"] == "该处方正由其他药师审核"
        review = await api.post(f"/api/v1/prescriptions/{rx_id}/review", json={"approve": True}, headers=second)
        assert review.status_code == 409 and review.json()["code"] == "RX_CLAIMED"

        approved = await api.post(f"/api/v1/prescriptions/{rx_id}/review", json={"approve": True}, headers=first)
        assert approved.status_code == 200 and approved.json()["stage"] == "awaiting_confirmation"
        assert approved.json()["claimed_by"] is None
        late = await api.post(f"/api/v1/prescriptions/{rx_id}/review/claim", headers=second)
        assert late.status_code == 409 and late.json()["code"] == "RX_NOT_AWAITING_REVIEW"
    finally:
        await handle.terminate("test done")
        for auth in (first, second):
            await api.post("/api/v1/pharmacists/me/duty", json={"on_duty": False}, headers=auth)

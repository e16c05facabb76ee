"""Complaints about an order (8.6.7 e) through the API: a patient complains about their own visit or prescription only,
reads their own complaints; staff holding the feedback permission list them and answer. No worker runs here: the flow
is started and waits (its answer and notices are tests/workflows/test_complaint.py and tests/e2e/test_complaints.py).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import update
from sqlmodel import col
from temporalio.client import Client, WorkflowExecutionStatus

from models.common import Role
from models.complaint import ComplaintInput
from models.tables import Complaint
from tests.api.consult_helpers import ConsultVisit, make_consult_visit, make_prescription
from tests.api.helpers import login, make_user
from tests.api.scheduling import audit_events
from tests.api.test_booking import assert_problem
from tests.workflows.test_prescription import DRAFT
from workflows.complaint import complaint_workflow_id

URL = "/api/v1/complaints"
ADMIN_URL = "/api/v1/admin/complaints"


class Complaints:
    """Creates complaints and terminates their flows at the end (no worker runs them here)."""

    def __init__(self, api: httpx.AsyncClient, client: Client) -> None:
        self.api = api
        self.client = client
        self.ids: list[str] = []

    async def create(self, headers: dict[str, str], **body: Any) -> dict[str, Any]:
        answer = await self.api.post(
            URL, json={"category": "service", "text": "医生回复很慢。", **body}, headers=headers
        )
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        self.ids.append(created["id"])
        return created


@pytest_asyncio.fixture
async def filed(api: httpx.AsyncClient, client: Client) -> AsyncIterator[Complaints]:
    complaints = Complaints(api, client)
    yield complaints
    for complaint_id in dict.fromkeys(complaints.ids):
        await client.get_workflow_handle(complaint_workflow_id(complaint_id)).terminate("test over")


async def _patient(api: httpx.AsyncClient, sessions) -> tuple[ConsultVisit, dict[str, str]]:  # type: ignore[no-untyped-def]
    visit = await make_consult_visit(sessions, stage="finished")
    return visit, await login(api, visit.patient_user)


async def test_a_patient_complains_about_their_own_visit_and_prescription(
    api: httpx.AsyncClient, sessions, client: Client, filed: Complaints
) -> None:  # type: ignore[no-untyped-def]
    visit, patient = await _patient(api, sessions)
    about_visit = await filed.create(patient, subject_type="visit", subject_id=visit.visit_id, text="  医生回复很慢。 ")
    assert about_visit["id"].startswith("cmp-")
    assert {k: about_visit[k] for k in ("patient_id", "subject_type", "subject_id", "category", "text", "status")} == {
        "patient_id": visit.patient_id,
        "subject_type": "visit",
        "subject_id": visit.visit_id,
        "category": "service",
        "text": "医生回复很慢。",
        "status": "open",
    }
    assert (about_visit["category_name"], about_visit["response"], about_visit["escalated_at"]) == (
        "服务态度",
        None,
        None,
    )

    # The flow is started on the API's queue, with the settings' windows and the notices' wording.
    handle = client.get_workflow_handle(complaint_workflow_id(about_visit["id"]))
    described = await handle.describe()
    assert (described.workflow_type, described.status) == ("Complaint", WorkflowExecutionStatus.RUNNING)
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [run] = await client.data_converter.decode(started.input.payloads, [ComplaintInput])
    assert (run.patient_ref, run.subject, run.category_name) == (
        f"patient:{visit.patient_id}",
        f"在线复诊 {visit.visit_id}",
        "服务态度",
    )
    assert (run.answer_within_s, run.remind_every_s) == (3 * 86400, 86400)
    assert [event.action for event in await audit_events(sessions, about_visit["id"])] == ["complaint.created"]

    rx_id = await make_prescription(sessions, visit, "completed", DRAFT)
    about_rx = await filed.create(patient, subject_type="prescription", subject_id=rx_id, category="delivery")
    assert (about_rx["subject_type"], about_rx["category_name"]) == ("prescription", "配送")

    mine = await api.get("/api/v1/me/complaints", headers=patient)
    assert mine.status_code == 200
    assert mine.json()["total"] == 2
    assert [item["id"] for item in mine.json()["items"]] == [about_rx["id"], about_visit["id"]]
    read = await api.get(f"{URL}/{about_visit['id']}", headers=patient)
    assert read.status_code == 200 and read.json() == about_visit


async def test_another_patients_order_and_complaint_do_not_exist_for_the_caller(
    api: httpx.AsyncClient, sessions, filed: Complaints
) -> None:  # type: ignore[no-untyped-def]
    visit, owner = await _patient(api, sessions)
    rx_id = await make_prescription(sessions, visit, "completed", DRAFT)
    complaint = await filed.create(owner, subject_type="visit", subject_id=visit.visit_id)
    other_visit, other = await _patient(api, sessions)

    for subject_type, subject_id in (
        ("visit", visit.visit_id),
        ("prescription", rx_id),
        ("visit", "visit-nobody"),
        ("prescription", other_visit.visit_id),  # an own visit's id is no prescription
    ):
        body = {"subject_type": subject_type, "subject_id": subject_id, "category": "other", "text": "x"}
        refused = await api.post(URL, json=body, headers=other)
        assert_problem(refused, 404, "NOT_FOUND")
        assert visit.patient_id not in refused.text

    assert_problem(await api.get(f"{URL}/{complaint['id']}", headers=other), 404, "NOT_FOUND")
    assert (await api.get("/api/v1/me/complaints", headers=other)).json() == {
        "items": [],
        "total": 0,
        "limit": 20,
        "offset": 0,
    }
    # The visit's own doctor is not who handles complaints; an admin (feedback.manage) is, and the read is audited.
    doctor = await login(api, visit.doctor_user)
    assert_problem(await api.get(f"{URL}/{complaint['id']}", headers=doctor), 404, "NOT_FOUND")
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    admin = await login(api, admin_user)
    assert (await api.get(f"{URL}/{complaint['id']}", headers=admin)).json()["id"] == complaint["id"]
    assert_problem(await api.get(f"{URL}/cmp-nobody", headers=admin), 404, "NOT_FOUND")
    events = await audit_events(sessions, complaint["id"])
    assert [event.action for event in events] == ["complaint.created", "complaint.read"]
    assert events[-1].actor_user_id == admin_user
    assert (await api.get(f"{URL}/{complaint['id']}")).status_code == 401


async def test_bad_input_is_a_validation_problem(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    visit, patient = await _patient(api, sessions)
    good = {"subject_type": "visit", "subject_id": visit.visit_id, "category": "billing", "text": "多收了挂号费。"}
    for bad in (
        {**good, "text": ""},
        {**good, "text": "   "},
        {**good, "text": "投" * 1001},
        {**good, "subject_id": "v" * 81},
        {**good, "subject_id": ""},
        {**good, "category": "rudeness"},
        {**good, "subject_type": "bill"},
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "category"},
    ):
        assert_problem(await api.post(URL, json=bad, headers=patient), 422, "VALIDATION_FAILED")
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    admin = await login(api, admin_user)
    for bad_answer in ({"response": ""}, {"response": " "}, {"response": "答" * 1001}, {}):
        answer = await api.post(f"{ADMIN_URL}/cmp-nobody/response", json=bad_answer, headers=admin)
        assert_problem(answer, 422, "VALIDATION_FAILED")
    assert_problem(await api.get(ADMIN_URL, params={"status": "closed"}, headers=admin), 422, "VALIDATION_FAILED")
    # Complaints are the patients' own: staff file none.
    assert_problem(await api.post(URL, json=good, headers=admin), 403, "FORBIDDEN")


async def test_a_repeated_request_with_its_key_files_one_complaint(
    api: httpx.AsyncClient, sessions, filed: Complaints
) -> None:  # type: ignore[no-untyped-def]
    visit, patient = await _patient(api, sessions)
    keyed = patient | {"Idempotency-Key": f"complaint-{uuid.uuid4()}"}
    body = {"subject_type": "visit", "subject_id": visit.visit_id, "category": "service", "text": "态度差。"}
    first = await api.post(URL, json=body, headers=keyed)
    assert first.status_code == 201, first.text
    filed.ids.append(first.json()["id"])
    again = await api.post(URL, json=body, headers=keyed)
    assert (again.status_code, again.json(), again.headers.get("Idempotent-Replayed")) == (201, first.json(), "true")
    assert (await api.get("/api/v1/me/complaints", headers=patient)).json()["total"] == 1
    reused = await api.post(URL, json={**body, "text": "另一条投诉"}, headers=keyed)
    assert_problem(reused, 422, "IDEMPOTENCY_KEY_REUSED")


async def test_only_feedback_handlers_reach_the_admin_routes(
    api: httpx.AsyncClient, sessions, filed: Complaints
) -> None:  # type: ignore[no-untyped-def]
    visit, patient = await _patient(api, sessions)
    complaint = await filed.create(patient, subject_type="visit", subject_id=visit.visit_id)
    respond = f"{ADMIN_URL}/{complaint['id']}/response"
    callers = {Role.PATIENT: patient}
    for role in (Role.DOCTOR, Role.PHARMACIST, Role.FINANCE):
        user, _ = await make_user(sessions, role)
        callers[role] = await login(api, user)
    for role, headers in callers.items():
        assert_problem(await api.get(ADMIN_URL, headers=headers), 403, "FORBIDDEN")
        refused = await api.post(respond, json={"response": "已处理"}, headers=headers)
        assert (refused.status_code, refused.json()["permission"]) == (403, "feedback.manage"), role
        if role is not Role.PATIENT:
            assert_problem(await api.get(f"{URL}/{complaint['id']}", headers=headers), 404, "NOT_FOUND")
    assert_problem(await api.get(ADMIN_URL), 401, "UNAUTHORIZED")
    assert_problem(await api.post(respond, json={"response": "已处理"}), 401, "UNAUTHORIZED")
    assert_problem(await api.post(URL, json={}), 401, "UNAUTHORIZED")
    assert_problem(await api.get("/api/v1/me/complaints"), 401, "UNAUTHORIZED")
    # The complaint is still open: nothing the refused callers sent reached the flow.
    assert (await api.get(f"{URL}/{complaint['id']}", headers=patient)).json()["status"] == "open"


async def test_the_queue_lists_open_complaints_oldest_first_and_answered_ones_latest_answer_first(
    api: httpx.AsyncClient, sessions, filed: Complaints
) -> None:  # type: ignore[no-untyped-def]
    visit, patient = await _patient(api, sessions)
    created = [
        (await filed.create(patient, subject_type="visit", subject_id=visit.visit_id, text=f"第{n}条"))["id"]
        for n in range(4)
    ]
    # Two of them answered (as the flow records it), the earlier one answered later.
    answered_at = datetime.now(UTC) - timedelta(hours=1)
    async with sessions() as session, session.begin():
        for complaint_id, at in ((created[0], answered_at + timedelta(minutes=5)), (created[2], answered_at)):
            await session.execute(
                update(Complaint)
                .where(col(Complaint.id) == complaint_id)
                .values(status="answered", response="已处理", responded_by="u-admin", responded_at=at)
            )
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    admin = await login(api, admin_user)

    async def listed(status: str | None) -> list[str]:
        params = {"limit": 100} | ({"status": status} if status else {})
        page = await api.get(ADMIN_URL, params=params, headers=admin)
        assert page.status_code == 200, page.text
        assert page.json()["total"] >= 2
        return [item["id"] for item in page.json()["items"] if item["id"] in created]

    assert await listed(None) == [created[1], created[3]]
    assert await listed("open") == [created[1], created[3]]
    assert await listed("answered") == [created[0], created[2]]
    mine = await api.get("/api/v1/me/complaints", params={"limit": 3, "offset": 1}, headers=patient)
    assert [item["id"] for item in mine.json()["items"]] == [created[2], created[1], created[0]]
    assert (mine.json()["total"], mine.json()["limit"], mine.json()["offset"]) == (4, 3, 1)


async def test_answering_an_unknown_or_answered_complaint_is_refused(
    api: httpx.AsyncClient, sessions, filed: Complaints
) -> None:  # type: ignore[no-untyped-def]
    visit, patient = await _patient(api, sessions)
    complaint = await filed.create(patient, subject_type="visit", subject_id=visit.visit_id)
    async with sessions() as session, session.begin():
        await session.execute(
            update(Complaint)
            .where(col(Complaint.id) == complaint["id"])
            .values(status="answered", response="已处理", responded_by="u-admin", responded_at=datetime.now(UTC))
        )
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    admin = await login(api, admin_user)
    unknown = await api.post(f"{ADMIN_URL}/cmp-nobody/response", json={"response": "已处理"}, headers=admin)
    assert_problem(unknown, 404, "NOT_FOUND")
    again = await api.post(f"{ADMIN_URL}/{complaint['id']}/response", json={"response": "再次答复"}, headers=admin)
    assert_problem(again, 409, "COMPLAINT_ANSWERED")
    assert [event.action for event in await audit_events(sessions, complaint["id"])] == ["complaint.created"]

"""Complaints about an order (8.6.7 e) through the HTTP API with the real worker: a patient complains about their visit,
the admins are told, an admin answers and the patient finds the answer in their inbox; unanswered past its deadline,
a complaint is escalated to the admins and keeps waiting for its answer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlmodel import col
from temporalio.client import Client

from models.tables import AuditEvent
from tests.api.consult_helpers import make_consult_visit
from tests.api.helpers import login
from tests.e2e.conftest import Stack
from workers.journey import Journey
from workflows.complaint import complaint_workflow_id


async def file_complaint(stack: Stack) -> tuple[dict[str, Any], dict[str, str]]:
    """A new patient's complaint about their finished visit; (the complaint, the patient's headers)."""
    visit = await make_consult_visit(stack.sessions, stage="finished")
    patient = await login(stack.http, visit.patient_user)
    body = {"subject_type": "visit", "subject_id": visit.visit_id, "category": "service", "text": "医生回复很慢。"}
    answer = await stack.http.post("/api/v1/complaints", json=body, headers=patient)
    assert answer.status_code == 201, answer.text
    return answer.json(), patient


async def inbox_with(journey: Journey, headers: dict[str, str], template: str, complaint_id: str) -> dict[str, Any]:
    """The caller's notice of `template` about the complaint, once it arrived."""

    async def probe() -> list[dict[str, Any]]:
        page = await journey.http.get("/api/v1/me/notifications", params={"limit": 100}, headers=headers)
        assert page.status_code == 200, page.text
        return [n for n in page.json()["items"] if n["template"] == template and complaint_id in n["body"]]

    found = await journey.until(f"{template} 通知", probe, bool)
    return dict(found[0])


async def test_the_admin_answers_and_the_patient_is_told(make_stack, client: Client) -> None:  # type: ignore[no-untyped-def]
    stack = await make_stack()
    journey = Journey(stack.http)
    complaint, patient = await file_complaint(stack)
    admin = await journey.login(journey.admin)
    received = await inbox_with(journey, admin, "complaint_received", complaint["id"])
    assert received["title"] == "收到患者投诉" and "服务态度" in received["body"]

    queue = await journey.call("GET", "/admin/complaints", journey.admin, params={"limit": 100})
    assert complaint["id"] in {item["id"] for item in queue["items"]}
    response = "已向医生反馈，今后将及时回复您的消息。"
    answered = await journey.call(
        "POST", f"/admin/complaints/{complaint['id']}/response", journey.admin, json={"response": response}
    )
    assert (answered["status"], answered["response"], answered["escalated_at"]) == ("answered", response, None)
    again = await journey.call(
        "POST", f"/admin/complaints/{complaint['id']}/response", journey.admin, expected=409, json={"response": "再答"}
    )
    assert again["code"] == "COMPLAINT_ANSWERED"

    told = await inbox_with(journey, patient, "complaint_answered", complaint["id"])
    assert told["title"] == "您的投诉已处理" and response in told["body"]
    mine = await stack.http.get(f"/api/v1/complaints/{complaint['id']}", headers=patient)
    assert (mine.json()["status"], mine.json()["response"]) == ("answered", response)
    await client.get_workflow_handle(complaint_workflow_id(complaint["id"])).result()
    async with stack.sessions() as session:
        actions = (
            await session.execute(
                select(col(AuditEvent.action))
                .where(col(AuditEvent.subject_id) == complaint["id"])
                .order_by(AuditEvent.id)
            )
        ).scalars()
        assert list(actions) == ["complaint.created", "complaint.answered"]


async def test_an_unanswered_complaint_is_escalated_and_waits_for_its_answer(make_stack, client: Client) -> None:  # type: ignore[no-untyped-def]
    stack = await make_stack(complaint_answer_within_s=2, complaint_remind_every_s=1)
    journey = Journey(stack.http)
    complaint, patient = await file_complaint(stack)
    admin = await journey.login(journey.admin)
    await inbox_with(journey, admin, "complaint_reminder", complaint["id"])
    overdue = await inbox_with(journey, admin, "complaint_overdue", complaint["id"])
    assert overdue["title"] == "投诉已超过答复时限"
    escalated = await journey.until(
        "投诉升级记录",
        lambda: journey.call("GET", f"/complaints/{complaint['id']}", journey.admin),
        lambda row: row["escalated_at"] is not None,
    )
    assert escalated["status"] == "open"

    answered = await journey.call(
        "POST", f"/admin/complaints/{complaint['id']}/response", journey.admin, json={"response": "已处理。"}
    )
    assert answered["status"] == "answered" and answered["escalated_at"] == escalated["escalated_at"]
    await inbox_with(journey, patient, "complaint_answered", complaint["id"])
    await client.get_workflow_handle(complaint_workflow_id(complaint["id"])).result()

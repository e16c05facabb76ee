"""Exam orders over the API, with the real flows, the exam steps against PostgreSQL and fakes for the channel: who may
order, see, pay, book, cancel, perform and cancel for the hospital; the problem codes of bad input; a day's places."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio.client import Client, WorkflowHandle

from activities.exams import ExamActivities
from models.billing import ChannelOrderStatus, PaymentNotice
from models.common import HOSPITAL_TZ, Role
from models.tables import AuditEvent
from models.visit import AcceptVisit, VisitStage
from tests.activities.test_exam_steps import make_exam
from tests.api.consult_helpers import ConsultVisit, make_consult_visit
from tests.api.helpers import login, make_user
from tests.workflows.conftest import Harness
from tests.workflows.fakes import FakeWorld
from tests.workflows.test_prescription import until
from tests.workflows.test_visit import book, pay, visit_input, wait_stage
from workers.worker import build_workers
from workflows.bill import BillWorkflow, bill_workflow_id
from workflows.visit import VisitWorkflow


class DbExamWorld(FakeWorld):
    """Fakes for everything but the exam steps, which write the read model and the day's places in PostgreSQL."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__()
        self._exams = ExamActivities(sessions)

    def exam_activities(self) -> list[Any]:
        return [self._exams.record_exam_order, self._exams.book_exam_day, self._exams.release_exam_days]


@pytest_asyncio.fixture
async def harness(client: Client, sessions) -> AsyncIterator[Harness]:
    world = DbExamWorld(sessions)
    queue = f"api-exams-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        for worker in build_workers(client, queue, world.activity_sets()):
            await stack.enter_async_context(worker)
        yield Harness(client=client, queue=queue, world=world)


@dataclass
class Consult:
    visit: ConsultVisit
    handle: WorkflowHandle
    doctor: dict[str, str]
    patient: dict[str, str]
    admin: dict[str, str]
    tongue: str  # an exam that needs a day, one place a day
    blood: str  # one that does not


@pytest_asyncio.fixture
async def consult(api: httpx.AsyncClient, sessions, harness: Harness) -> AsyncIterator[Consult]:
    """A visit in consult (its row in PostgreSQL, its flow on the harness) and two exams in the catalogue."""
    visit = await make_consult_visit(sessions)
    terms = visit_input().model_copy(
        update={"visit_id": visit.visit_id, "patient_id": visit.patient_id, "doctor_id": visit.doctor_id}
    )
    _, handle = await book(harness, terms, patient_id=visit.patient_id)
    await pay(harness, terms)
    await wait_stage(handle, VisitStage.WAITING_DOCTOR)
    await handle.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id=visit.doctor_id))
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    tongue = await make_exam(sessions, capacity=1)
    blood = await make_exam(sessions, capacity=0, needs_booking=False, price_fen=1800)
    yield Consult(
        visit=visit,
        handle=handle,
        doctor=await login(api, visit.doctor_user),
        patient=await login(api, visit.patient_user),
        admin=await login(api, admin_user),
        tongue=tongue.code,
        blood=blood.code,
    )
    await handle.terminate("test done")


def tomorrow() -> date:
    return datetime.now(UTC).astimezone(HOSPITAL_TZ).date() + timedelta(days=1)


async def problem(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == code, answer.text


async def order(api: httpx.AsyncClient, c: Consult, codes: list[str]) -> dict[str, Any]:
    answer = await api.post(
        f"/api/v1/visits/{c.visit.visit_id}/exams",
        json={"exam_codes": codes, "note": "了解舌象变化"},
        headers={**c.doctor, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


async def paid(api: httpx.AsyncClient, c: Consult, harness: Harness, order_id: str) -> dict[str, Any]:
    opened = await api.post(f"/api/v1/exams/{order_id}/payment", headers=c.patient)
    assert opened.status_code == 200, opened.text
    state = opened.json()
    assert state["pay_url"] and state["stage"] == "awaiting_payment"
    await harness.client.get_workflow_handle(bill_workflow_id(state["bill_id"])).signal(
        BillWorkflow.payment_notice,
        PaymentNotice(out_trade_no=state["bill_id"], status=ChannelOrderStatus.SUCCESS, amount_fen=state["total_fen"]),
    )

    async def settled() -> bool:
        return (await api.get(f"/api/v1/exams/{order_id}", headers=c.patient)).json()["stage"] == "paid"

    await until(settled)
    return state


async def test_only_the_visit_doctor_orders_and_bad_input_gets_stable_codes(api, sessions, consult: Consult) -> None:
    c = consult
    path = f"/api/v1/visits/{c.visit.visit_id}/exams"
    catalogue = await api.get("/api/v1/exam-catalogue", headers=c.doctor)
    assert {c.tongue, c.blood} <= {entry["code"] for entry in catalogue.json()}

    stranger_user, _ = await make_user(sessions, Role.DOCTOR)
    await problem(
        await api.post(path, json={"exam_codes": [c.blood]}, headers=await login(api, stranger_user)), 404, "NOT_FOUND"
    )
    await problem(await api.post(path, json={"exam_codes": [c.blood]}, headers=c.patient), 403, "FORBIDDEN")
    await problem(await api.post(path, json={"exam_codes": ["NO-SUCH"]}, headers=c.doctor), 422, "EXAM_UNKNOWN")
    await problem(
        await api.post(path, json={"exam_codes": [c.blood, c.blood]}, headers=c.doctor), 422, "EXAM_DUPLICATE"
    )
    await problem(await api.post(path, json={"exam_codes": []}, headers=c.doctor), 422, "VALIDATION_FAILED")

    ordered = await order(api, c, [c.tongue, c.blood])
    assert ordered["total_fen"] == 4800 and [i["item_no"] for i in ordered["items"]] == [1, 2]
    async with sessions() as session:
        audited = await session.scalar(
            select(col(AuditEvent.detail)).where(
                col(AuditEvent.action) == "exam.ordered", col(AuditEvent.subject_id) == ordered["order_id"]
            )
        )
    assert audited == {"patient_id": c.visit.patient_id, "codes": [c.tongue, c.blood], "total_fen": 4800}

    # The patient sees it; another patient neither lists nor reads nor pays it.
    mine = (await api.get("/api/v1/exams", headers=c.patient)).json()
    assert [o["order_id"] for o in mine] == [ordered["order_id"]]
    assert [i["status"] for i in mine[0]["items"]] == ["ordered", "ordered"]
    other_user, _ = await make_user(sessions, Role.PATIENT)
    other = await login(api, other_user)
    assert (await api.get("/api/v1/exams", headers=other)).json() == []
    await problem(await api.get(f"/api/v1/exams/{ordered['order_id']}", headers=other), 404, "NOT_FOUND")
    await problem(await api.post(f"/api/v1/exams/{ordered['order_id']}/payment", headers=other), 404, "NOT_FOUND")
    detail = await api.get(f"/api/v1/exams/{ordered['order_id']}", headers=c.doctor)
    assert detail.status_code == 200 and detail.json()["stage"] == "awaiting_payment"


async def test_pay_book_perform_cancel_and_the_refusals_around_them(
    api, sessions, consult: Consult, harness: Harness
) -> None:
    c = consult
    first = await order(api, c, [c.tongue, c.blood])
    order_id = first["order_id"]
    base = f"/api/v1/exams/{order_id}"
    day = tomorrow().isoformat()
    # Nothing item by item before payment.
    await problem(await api.post(f"{base}/items/1/booking", json={"day": day}, headers=c.patient), 409, "EXAM_NOT_PAID")
    await paid(api, c, harness, order_id)
    await problem(await api.post(f"{base}/payment", headers=c.patient), 409, "EXAM_ALREADY_PAID")

    availability = f"/api/v1/exam-catalogue/{c.tongue}/availability"
    before = (await api.get(availability, params={"start": day, "days": 2}, headers=c.patient)).json()
    assert [d["remaining"] for d in before] == [1, 1]
    await problem(
        await api.get(f"/api/v1/exam-catalogue/{c.blood}/availability", headers=c.patient), 409, "EXAM_NO_BOOKING"
    )
    await problem(
        await api.get(availability, params={"start": "2001-01-01"}, headers=c.patient), 422, "EXAM_DAY_OUT_OF_RANGE"
    )
    await problem(
        await api.post(f"{base}/items/2/booking", json={"day": day}, headers=c.patient), 409, "EXAM_NO_BOOKING"
    )
    await problem(await api.post(f"{base}/items/9/booking", json={"day": day}, headers=c.patient), 404, "NOT_FOUND")
    booked = await api.post(f"{base}/items/1/booking", json={"day": day}, headers=c.patient)
    assert booked.status_code == 200, booked.text
    assert booked.json()["items"][0]["status"] == "booked"
    assert [
        d["remaining"]
        for d in (await api.get(availability, params={"start": day, "days": 2}, headers=c.patient)).json()
    ] == [0, 1]

    # The day's only place is taken: a second order of the same exam is refused that day.
    second = await order(api, c, [c.tongue])
    await paid(api, c, harness, second["order_id"])
    await problem(
        await api.post(f"/api/v1/exams/{second['order_id']}/items/1/booking", json={"day": day}, headers=c.patient),
        409,
        "EXAM_DAY_FULL",
    )

    # Performed by the hospital (not by the patient, not by a doctor of another visit); then never refunded.
    await problem(await api.post(f"{base}/items/2/performed", headers=c.patient), 403, "FORBIDDEN")
    stranger_user, _ = await make_user(sessions, Role.DOCTOR)
    await problem(
        await api.post(f"{base}/items/2/performed", headers=await login(api, stranger_user)), 404, "NOT_FOUND"
    )
    performed = await api.post(f"{base}/items/2/performed", headers=c.admin)
    assert performed.status_code == 200 and performed.json()["items"][1]["status"] == "performed"
    await problem(
        await api.post(f"{base}/cancel", json={"reason": "不想做了", "item_nos": [2]}, headers=c.patient),
        409,
        "EXAM_PERFORMED",
    )
    await problem(
        await api.post(
            f"{base}/hospital-cancel", json={"reason": "x", "reason_code": "schedule_changed"}, headers=c.patient
        ),
        403,
        "FORBIDDEN",
    )
    await problem(
        await api.post(f"{base}/cancel", json={"reason": "x", "item_nos": [0]}, headers=c.patient),
        422,
        "VALIDATION_FAILED",
    )

    # The booked exam is cancelled: its price comes back once, its day is free again.
    key = {"Idempotency-Key": str(uuid.uuid4())}
    cancelled = await api.post(f"{base}/cancel", json={"reason": "症状缓解"}, headers={**c.patient, **key})
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["items"][0]["status"] == "cancelled" and body["refunded_fen"] == 3000
    assert harness.world.refunds[-1].amount_fen == 3000
    again = await api.post(f"{base}/cancel", json={"reason": "症状缓解"}, headers={**c.patient, **key})
    assert again.json() == body and again.headers.get("Idempotent-Replayed") == "true"
    assert [
        d["remaining"]
        for d in (await api.get(availability, params={"start": day, "days": 1}, headers=c.patient)).json()
    ] == [1]

    # The order ended (one performed, one cancelled): it answers from its record, the performed exam still refused.
    async def ended() -> bool:
        return (await api.get("/api/v1/exams", headers=c.patient)).json()[-1]["stage"] == "completed"

    await until(ended)
    await problem(
        await api.post(f"{base}/cancel", json={"reason": "x", "item_nos": [2]}, headers=c.patient),
        409,
        "EXAM_PERFORMED",
    )
    await problem(
        await api.post(f"{base}/cancel", json={"reason": "x", "item_nos": [1]}, headers=c.patient),
        409,
        "EXAM_CANCELLED",
    )

    # The hospital cancels the second order's exam: an administrator's refund, audited.
    hospital = await api.post(
        f"/api/v1/exams/{second['order_id']}/hospital-cancel",
        json={"reason": "舌象仪维护", "reason_code": "equipment_unavailable"},
        headers=c.admin,
    )
    assert hospital.status_code == 200, hospital.text
    assert hospital.json()["items"][0]["status"] == "cancelled"
    refund = harness.world.refunds[-1]
    assert (refund.kind.value, refund.reason_code, refund.amount_fen) == ("authorized", "equipment_unavailable", 3000)
    async with sessions() as session:
        actions = set(
            (
                await session.execute(
                    select(col(AuditEvent.action)).where(col(AuditEvent.subject_id).in_([order_id, second["order_id"]]))
                )
            ).scalars()
        )
    assert {"exam.performed", "exam.hospital_cancelled", "exam_order.read"} <= actions

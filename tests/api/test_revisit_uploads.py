"""Records patients upload as revisit evidence (8.1.2.2 a), over HTTP with the real flows and steps: checked and
sealed with their SM3 digest on the evidence ledger, read only by those who may (every read audited), reviewed by a
doctor of the disease's department; an approved upload makes the patient eligible."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import httpx
import pytest_asyncio
from sqlalchemy import func, select, update
from sqlmodel import col
from temporalio.client import Client

from activities.adapters.registry import load_adapters
from api.identity import identity_columns
from api.main import create_app
from core.crypto.sm import FieldCipher, sm3_hex
from core.settings import Settings
from models import idcard
from models.common import HOSPITAL_TZ, Role
from models.tables import AuditEvent, LedgerEntry, Patient, RevisitUpload
from tests.api.helpers import accept_all_consents, login, make_department, make_disease, make_user
from tests.api.test_consult import assert_problem
from workers.worker import build_activities, build_workers
from workflows.revisit import revisit_workflow_id


def hospital_today() -> date:
    return datetime.now(HOSPITAL_TZ).date()


PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(4096)
PDF = b"%PDF-1.7\n" + os.urandom(2048)


@dataclass
class People:
    patient_user: str
    patient_id: str
    disease: str
    reviewer_user: str
    other_doctor_user: str


@pytest_asyncio.fixture
async def api(database_url: str, sessions, client: Client) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """The API with workers running the real steps (sandbox adapters) on a queue of its own."""
    settings = Settings(database_url=database_url, task_queue=f"api-uploads-{uuid.uuid4().hex[:8]}")  # type: ignore[call-arg]
    activities = build_activities(sessions, settings, load_adapters(sessions, settings))
    app = create_app(settings, temporal_client=client)
    async with AsyncExitStack() as stack:
        for worker in build_workers(client, settings.task_queue, activities):
            await stack.enter_async_context(worker)
        await stack.enter_async_context(app.router.lifespan_context(app))
        yield await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver", timeout=60)
        )


@pytest_asyncio.fixture
async def people(sessions, settings) -> People:  # type: ignore[no-untyped-def]
    department = await make_department(sessions)
    disease = await make_disease(sessions, department, "胃痞病")
    patient_user, patient_id = await make_user(sessions, Role.PATIENT)
    assert patient_id is not None
    cipher = FieldCipher(settings.pii_key, settings.blind_index_key)
    columns = identity_columns(cipher, name="赵六", id_card=idcard.random_valid(), phone="13800003333", address=None)
    async with sessions() as session, session.begin():
        await session.execute(update(Patient).where(col(Patient.id) == patient_id).values(**columns))
    await accept_all_consents(sessions, patient_id)
    reviewer_user, _ = await make_user(sessions, Role.DOCTOR, department_id=department)
    other_doctor_user, _ = await make_user(sessions, Role.DOCTOR)
    return People(patient_user, patient_id, disease, reviewer_user, other_doctor_user)


async def send(
    api: httpx.AsyncClient,
    who: dict[str, str],
    disease: str,
    data: bytes = PNG,
    content_type: str = "image/png",
    visited_on: date | None = None,
    **headers: str,
) -> httpx.Response:
    day = visited_on or hospital_today() - timedelta(days=30)
    return await api.post(
        "/api/v1/revisit-uploads",
        data={"disease_code": disease, "visited_on": day.isoformat()},
        files={"file": ("record", data, content_type)},
        headers={**who, **headers},
    )


async def test_uploads_are_checked_before_anything_is_stored(api, sessions, people: People) -> None:
    me = await login(api, people.patient_user)
    assert_problem(await send(api, me, people.disease, b"plain text", "text/plain"), 415, "MEDIA_TYPE_NOT_ALLOWED")
    assert_problem(await send(api, me, people.disease, PNG, "application/pdf"), 422, "MEDIA_CONTENT_MISMATCH")
    big = b"%PDF-" + bytes(10 * 1024 * 1024)
    assert_problem(await send(api, me, people.disease, big, "application/pdf"), 413, "MEDIA_TOO_LARGE")
    tomorrow = hospital_today() + timedelta(days=1)
    assert_problem(await send(api, me, people.disease, visited_on=tomorrow), 422, "VISIT_DATE_IN_FUTURE")
    long_ago = hospital_today() - timedelta(days=400)
    assert_problem(await send(api, me, people.disease, visited_on=long_ago), 422, "VISIT_DATE_OUT_OF_WINDOW")
    assert_problem(await send(api, me, "NO-SUCH-DISEASE"), 404, "NOT_FOUND")
    no_file = await api.post(
        "/api/v1/revisit-uploads", data={"disease_code": people.disease, "visited_on": "2026-01-01"}, headers=me
    )
    assert no_file.status_code in (415, 422)
    stranger_user, _ = await make_user(sessions, Role.PATIENT)
    assert_problem(await send(api, await login(api, stranger_user), people.disease), 403, "CONSENT_REQUIRED")
    async with sessions() as session:
        stored = await session.scalar(select(func.count()).where(col(RevisitUpload.patient_id) == people.patient_id))
    assert stored == 0


async def test_an_upload_reviewed_and_approved_makes_the_patient_eligible(
    api, sessions, client: Client, people: People
) -> None:
    me = await login(api, people.patient_user)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    created = await send(api, me, people.disease, PDF, "application/pdf", **key)
    assert created.status_code == 201, created.text
    upload, decision = created.json()["upload"], created.json()["decision"]
    assert decision["status"] == "pending_review" and "等待医生审核" in decision["reason"]
    assert (upload["kind"], upload["status"], upload["sm3"]) == ("pdf", "pending", sm3_hex(PDF))
    replayed = await send(api, me, people.disease, PDF, "application/pdf", **key)
    assert replayed.headers.get("Idempotent-Replayed") == "true" and replayed.json()["upload"] == upload
    async with sessions() as session:
        row = await session.get(RevisitUpload, upload["upload_id"])
        entry = await session.scalar(select(LedgerEntry).where(col(LedgerEntry.seq) == upload["ledger_seq"]))
    assert row is not None and PDF not in row.data_enc  # sealed at rest
    assert entry is not None and (entry.kind, entry.subject, entry.digest.hex()) == (
        "revisit.upload",
        f"revisit_upload:{upload['upload_id']}",
        sm3_hex(PDF),
    )

    file_path = f"/api/v1/revisit-uploads/{upload['upload_id']}/file"
    mine = await api.get(file_path, headers=me)
    assert (mine.content, mine.headers["x-content-sm3"], mine.headers["content-type"]) == (
        PDF,
        sm3_hex(PDF),
        "application/pdf",
    )
    stranger_user, _ = await make_user(sessions, Role.PATIENT)
    other_doctor = await login(api, people.other_doctor_user)
    assert_problem(await api.get(file_path, headers=await login(api, stranger_user)), 404, "NOT_FOUND")
    assert_problem(await api.get(file_path, headers=other_doctor), 404, "NOT_FOUND")

    reviewer = await login(api, people.reviewer_user)
    queue = await api.get("/api/v1/revisit-uploads", params={"status": "pending"}, headers=reviewer)
    assert upload["upload_id"] in {u["upload_id"] for u in queue.json()}
    assert upload["upload_id"] not in {
        u["upload_id"] for u in (await api.get("/api/v1/revisit-uploads", headers=other_doctor)).json()
    }
    assert (await api.get(file_path, headers=reviewer)).content == PDF
    async with sessions() as session:
        readers = (
            (
                await session.execute(
                    select(col(AuditEvent.actor_user_id)).where(
                        col(AuditEvent.action) == "revisit_upload.read",
                        col(AuditEvent.subject_id) == upload["upload_id"],
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(readers) == 2 and set(readers) != {None}

    review_path = f"/api/v1/revisit-uploads/{upload['upload_id']}/review"
    assert_problem(await api.post(review_path, json={"approve": True}, headers=other_doctor), 404, "NOT_FOUND")
    assert_problem(
        await api.post(review_path, json={"approve": False}, headers=reviewer), 409, "REVIEW_REASON_REQUIRED"
    )
    approved = await api.post(review_path, json={"approve": True}, headers=reviewer)
    assert approved.status_code == 200, approved.text
    assert approved.json()["upload"]["status"] == "approved"
    decided = approved.json()["decision"]
    assert decided["status"] == "eligible" and decided["evidence"][0]["source"] == "upload"
    assert_problem(await api.post(review_path, json={"approve": True}, headers=reviewer), 409, "UPLOAD_NOT_PENDING")
    # The disease tag now gates booking open: asking again returns the open eligible decision.
    check = await api.post("/api/v1/revisit-checks", json={"disease_code": people.disease}, headers=me)
    assert check.json()["status"] == "eligible"
    await client.get_workflow_handle(revisit_workflow_id(people.patient_id, people.disease)).terminate("test done")


async def test_a_rejected_upload_leaves_the_patient_not_eligible_until_another_is_approved(
    api, sessions, client: Client, people: People
) -> None:
    me, reviewer = await login(api, people.patient_user), await login(api, people.reviewer_user)
    first = (await send(api, me, people.disease)).json()["upload"]
    rejected = await api.post(
        f"/api/v1/revisit-uploads/{first['upload_id']}/review",
        json={"approve": False, "reason": "照片模糊，无法辨认诊断"},
        headers=reviewer,
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["decision"] == {
        **rejected.json()["decision"],
        "status": "not_eligible",
        "reason": "上传的就诊资料未通过审核：照片模糊，无法辨认诊断",
    }
    assert rejected.json()["upload"]["review_reason"] == "照片模糊，无法辨认诊断"
    mine = (await api.get("/api/v1/revisit-uploads", headers=me)).json()
    assert [(u["upload_id"], u["status"]) for u in mine] == [(first["upload_id"], "rejected")]

    second = await send(api, me, people.disease, PDF, "application/pdf")
    assert second.json()["decision"]["status"] == "pending_review"
    approved = await api.post(
        f"/api/v1/revisit-uploads/{second.json()['upload']['upload_id']}/review",
        json={"approve": True},
        headers=reviewer,
    )
    assert approved.json()["decision"]["status"] == "eligible"
    await client.get_workflow_handle(revisit_workflow_id(people.patient_id, people.disease)).terminate("test done")

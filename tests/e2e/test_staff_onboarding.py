"""Staff onboarding and institution registration through the HTTP API with the real worker and sandbox adapters.

A doctor registers, signs in to a session that reaches only the application, uploads an ID photo and licences, and
submits; the flow puts the documents' digests on the evidence ledger, looks the licence up in the (sandbox) national
registry, and waits for the admin, whose approval makes the account a doctor's: listed publicly, signing in fully.
A doctor with too little practice is turned down by the checks alone and told why by SMS. The hospital's registration
with the supervision platform is approved and verified; once the platform no longer confirms it, an admin's
re-verification suspends it (no new bookings, the admins told) until a confirmed one reinstates it.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import date
from typing import Any

import httpx
from sqlalchemy import select, text, update
from sqlmodel import col

from activities.adapters.practitioner.sandbox import sandbox_licence
from models import idcard
from models.tables import Department, Institution, LedgerEntry, StaffDocument
from tests.e2e.conftest import Stack
from workers.journey import Journey
from workers.seed import DEMO_HIS_DIAGNOSES, DEMO_PASSWORD

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(512)
PDF = b"%PDF-1.7\n" + os.urandom(512)


async def token(http: httpx.AsyncClient, username: str, password: str) -> tuple[dict[str, str], str]:
    answer = await http.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}, answer.json()["scope"]


async def until(probe: Any, done: Any, what: str) -> Any:
    for _ in range(300):
        value = await probe()
        if done(value):
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {value}")


async def apply_as_doctor(stack: Stack, licence_date: date) -> tuple[str, str, dict[str, str]]:
    """Register, sign in, upload the three documents, submit; (staff id, username, applicant headers)."""
    async with stack.sessions() as session:
        department = (await session.execute(select(col(Department.id)).limit(1))).scalar_one()
    username = f"dr-{uuid.uuid4().hex[:8]}"
    body = {
        "role": "doctor",
        "username": username,
        "password": DEMO_PASSWORD,
        "name": "李时珍",
        "id_card_no": idcard.random_valid(),
        "phone": "13912345678",
        "department_id": department,
        "title": "副主任医师",
        "licence_no": sandbox_licence(licence_date, serial=uuid.uuid4().int % 999_998 + 1),
        "licence_date": licence_date.isoformat(),
    }
    created = await stack.http.post("/api/v1/staff-applications", json=body)
    assert created.status_code == 201, created.text
    headers, scope = await token(stack.http, username, DEMO_PASSWORD)
    assert scope == "applicant"
    for kind, data, content_type in (
        ("id_photo", PNG, "image/png"),
        ("practice_licence", PDF, "application/pdf"),
        ("qualification", PNG, "image/png"),
    ):
        uploaded = await stack.http.post(
            "/api/v1/staff-applications/me/documents",
            data={"kind": kind},
            files={"file": (kind, data, content_type)},
            headers=headers,
        )
        assert uploaded.status_code == 201, uploaded.text
    submitted = await stack.http.post("/api/v1/staff-applications/me/submit", headers=headers)
    assert submitted.status_code == 202, submitted.text
    return created.json()["staff_id"], username, headers


async def test_a_doctor_registers_is_checked_approved_and_works_as_a_doctor(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack: Stack = await make_stack()
    http = stack.http
    staff_id, username, applicant = await apply_as_doctor(stack, date(2015, 9, 1))

    async def mine() -> dict[str, Any]:
        return (await http.get("/api/v1/staff-applications/me", headers=applicant)).json()

    waiting = await until(mine, lambda state: state["status"] != "checking", "the checks")
    assert waiting["status"] == "awaiting_review", waiting
    assert {check["code"]: check["passed"] for check in waiting["checks"]} == {
        "DOCUMENTS_COMPLETE": True,
        "REGISTRY": True,
        "PRACTICE_YEARS": True,
    }
    # Every document's SM3 digest is on the evidence ledger.
    async with stack.sessions() as session:
        documents = (
            (await session.execute(select(StaffDocument).where(col(StaffDocument.staff_id) == staff_id)))
            .scalars()
            .all()
        )
        seqs = [document.ledger_seq for document in documents]
        assert None not in seqs
        entries = (await session.execute(select(LedgerEntry).where(col(LedgerEntry.seq).in_(seqs)))).scalars().all()
    assert {entry.digest.hex() for entry in entries} == {document.sm3 for document in documents}

    admin, _ = await token(http, "demo-admin", DEMO_PASSWORD)
    queue = await http.get("/api/v1/admin/staff-applications", params={"status": "awaiting_review"}, headers=admin)
    assert staff_id in {item["staff_id"] for item in queue.json()["items"]}
    refused = await http.post(
        f"/api/v1/admin/staff-applications/{staff_id}/review", json={"approve": False}, headers=admin
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "REASON_REQUIRED")
    approved = await http.post(
        f"/api/v1/admin/staff-applications/{staff_id}/review", json={"approve": True}, headers=admin
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"

    # The applicant's session ended with the approval; signing in again gives a doctor's session.
    assert (await http.get("/api/v1/staff-applications/me", headers=applicant)).status_code == 401
    doctor, scope = await token(http, username, DEMO_PASSWORD)
    assert scope == "full"
    me = (await http.get("/api/v1/me", headers=doctor)).json()
    assert me["role"] == "doctor"
    public = await http.get(f"/api/v1/doctors/{staff_id}")
    assert public.status_code == 200 and public.json()["title"] == "副主任医师"

    # Told through the notifier, as an in-app notice too (it goes out beside the flow, a moment after the approval).
    async def inbox() -> list[dict[str, Any]]:
        return list((await http.get("/api/v1/me/notifications", headers=doctor)).json()["items"])

    await until(inbox, lambda items: any(item["title"] == "资质审核通过" for item in items), "the approval notice")


async def test_a_doctor_with_two_years_of_practice_is_turned_down_and_told_why(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack: Stack = await make_stack()
    today = date.today()
    staff_id, _, applicant = await apply_as_doctor(stack, today.replace(year=today.year - 2))

    async def mine() -> dict[str, Any]:
        return (await stack.http.get("/api/v1/staff-applications/me", headers=applicant)).json()

    rejected = await until(mine, lambda state: state["status"] == "rejected", "the rejection")
    assert "不足 3 年" in rejected["reason"]

    async def notices() -> list[Any]:
        async with stack.sessions() as session:
            sent = await session.execute(
                text(
                    "SELECT request FROM sandbox_calls WHERE system = 'notifier' AND request->>'user_id' = "
                    "(SELECT user_id FROM staff_applications WHERE id = :s)"
                ),
                {"s": staff_id},
            )
            return list(sent.scalars().all())

    # The notice goes out beside the flow, a moment after the application shows as rejected.
    texts = await until(notices, bool, "the rejection notice")
    assert all("不足 3 年" in sent["body"] for sent in texts)
    # Rejected: the application is open again for better documents.
    again = await stack.http.post(
        "/api/v1/staff-applications/me/documents",
        data={"kind": "practice_licence"},
        files={"file": ("licence", PDF, "application/pdf")},
        headers=applicant,
    )
    assert again.status_code == 201


async def register_institution(stack: Stack, admin: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """Register an institution and wait for the (sandbox) platform's decision: (its URL, the decided record)."""
    code = f"PDY{uuid.uuid4().hex[:10].upper()}"
    details = {
        "code": code,
        "name": "岐黄中医互联网医院",
        "kind": "互联网医院",
        "licence_no": code,
        "access_ips": ["203.0.113.10"],
    }
    created = await stack.http.post("/api/v1/admin/institutions", json=details, headers=admin)
    assert created.status_code == 201, created.text
    url = f"/api/v1/admin/institutions/{created.json()['id']}"
    assert (await stack.http.post(f"{url}/registration", headers=admin)).status_code == 202

    async def state() -> dict[str, Any]:
        return (await stack.http.get(url, headers=admin)).json()

    done = await until(state, lambda row: row["status"] in ("approved", "rejected"), "the platform's decision")
    return url, done


async def test_the_institution_is_registered_approved_and_verified(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack: Stack = await make_stack()
    admin, _ = await token(stack.http, "demo-admin", DEMO_PASSWORD)
    _, done = await register_institution(stack, admin)
    assert done["status"] == "approved" and done["platform_ref"].startswith("SBJG")
    assert done["verification"]["verified"] is True and done["verified_at"] is not None


async def test_an_institution_the_platform_no_longer_confirms_is_suspended_until_an_admin_reverifies(
    make_stack,
) -> None:  # type: ignore[no-untyped-def]
    stack: Stack = await make_stack()
    http = stack.http
    admin, _ = await token(http, "demo-admin", DEMO_PASSWORD)
    url, done = await register_institution(stack, admin)
    assert done["status"] == "approved"
    institution_id = done["id"]
    _, disease, doctor = DEMO_HIS_DIAGNOSES["demo-patient"]
    slot_id = await Journey(http).free_slot(doctor, disease)
    patient, _ = await token(http, "demo-patient", DEMO_PASSWORD)

    async def state() -> dict[str, Any]:
        return (await http.get(url, headers=admin)).json()

    async def admin_inbox() -> list[dict[str, Any]]:
        return list((await http.get("/api/v1/me/notifications", headers=admin)).json()["items"])

    try:
        # What the hospital keeps no longer matches the platform's record (as after a licence change there).
        async with stack.sessions() as session, session.begin():
            await session.execute(
                update(Institution).where(col(Institution.id) == institution_id).values(name="岐黄中医院（旧）")
            )
        asked = await http.post(f"{url}/reverification", headers=admin)
        assert asked.status_code == 202, asked.text
        suspended = await until(state, lambda row: row["status"] != "approved", "the suspension")
        assert suspended["status"] == "suspended" and suspended["suspended_at"] is not None
        assert "岐黄中医互联网医院" in suspended["reason"]
        [check] = (await http.get(f"{url}/reverifications", headers=admin)).json()
        assert (check["verified"], check["status_before"], check["status_after"]) == (False, "approved", "suspended")
        assert check["requested_by"] != "system" and check["platform_record"]["found"] is True
        await until(
            admin_inbox,
            lambda items: any(item["title"] == "机构核验未通过，已暂停诊疗服务" for item in items),
            "notice",
        )

        refused = await http.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=patient)
        assert (refused.status_code, refused.json()["code"]) == (409, "INSTITUTION_SUSPENDED")

        # Put right, the admin's re-verification reinstates it (the booking gate opening again is in tests/api).
        async with stack.sessions() as session, session.begin():
            await session.execute(
                update(Institution).where(col(Institution.id) == institution_id).values(name="岐黄中医互联网医院")
            )
        assert (await http.post(f"{url}/reverification", headers=admin)).status_code == 202
        back = await until(state, lambda row: row["status"] == "approved", "the reinstatement")
        assert back["suspended_at"] is None and back["reason"] is None
        await until(
            admin_inbox, lambda items: any(item["title"] == "机构核验通过，已恢复诊疗服务" for item in items), "notice"
        )
    finally:
        # While any institution is suspended the hospital takes no bookings: leave none for the tests after this.
        async with stack.sessions() as session, session.begin():
            await session.execute(
                update(Institution)
                .where(col(Institution.id) == institution_id, col(Institution.status) == "suspended")
                .values(status="rejected")
            )

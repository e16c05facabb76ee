"""The institution's details and their submission to the supervision platform (8.5.4), for admins holding the
institution permission; asking for a re-verification and reading its outcomes; a suspended institution's hold on
bookings. The platform's decisions are the flows' (tests/workflows/test_institution.py, tests/e2e)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import update
from sqlmodel import col
from temporalio.client import Client

from models.common import Role
from models.tables import Institution, InstitutionReverification, Slot
from tests.api.helpers import login, make_department, make_disease, make_user
from tests.api.test_booking import Clinic, assert_problem, book
from workflows.institution import institution_workflow_id, reverification_workflow_id

URL = "/api/v1/admin/institutions"


def details(**overrides: Any) -> dict[str, Any]:
    code = f"PDY{uuid.uuid4().hex[:10].upper()}"
    return {
        "code": code,
        "name": "岐黄中医互联网医院",
        "kind": "互联网医院",
        "licence_no": code,
        "access_ips": ["203.0.113.10", "198.51.100.0/28"],
        **overrides,
    }


async def test_details_are_kept_submitted_once_and_then_locked(
    api: httpx.AsyncClient, sessions, client: Client
) -> None:  # type: ignore[no-untyped-def]
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    admin = await login(api, admin_user)
    body = details()
    created = await api.post(URL, json=body, headers=admin)
    assert created.status_code == 201, created.text
    institution = created.json()
    assert (institution["status"], institution["attempt"], institution["platform_ref"]) == ("draft", 0, None)
    assert (await api.post(URL, json=body, headers=admin)).json()["code"] == "INSTITUTION_EXISTS"
    bad_ip = await api.post(URL, json=details(access_ips=["300.1.1.1"]), headers=admin)
    assert bad_ip.status_code == 422

    url = f"{URL}/{institution['id']}"
    edited = await api.put(url, json={**body, "kind": "中医医院"}, headers=admin)
    assert edited.status_code == 200 and edited.json()["kind"] == "中医医院"

    submitted = await api.post(f"{url}/registration", headers=admin)
    assert submitted.status_code == 202, submitted.text
    assert submitted.json() == {
        "institution_id": institution["id"],
        "status": "submitted",
        "attempt": 1,
        "workflow_id": institution_workflow_id(institution["id"]),
    }
    handle = client.get_workflow_handle(institution_workflow_id(institution["id"]))
    try:
        # No worker runs here: the flow waits. Asking again is the same submission.
        assert (await api.post(f"{url}/registration", headers=admin)).json()["attempt"] == 1
        locked = await api.put(url, json=body, headers=admin)
        assert (locked.status_code, locked.json()["code"]) == (409, "INSTITUTION_NOT_EDITABLE")
        listed = await api.get(URL, headers=admin)
        assert institution["id"] in {row["id"] for row in listed.json()}
        assert (await api.get(url, headers=admin)).json()["submitted_at"] is not None
    finally:
        await handle.terminate("test over")


async def test_only_institution_managers(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    for role in (Role.DOCTOR, Role.FINANCE, Role.PATIENT):
        user, _ = await make_user(sessions, role)
        answer = await api.post(URL, json=details(), headers=await login(api, user))
        assert (answer.status_code, answer.json()["code"]) == (403, "FORBIDDEN"), role


async def _with_status(sessions, status: str) -> Institution:  # type: ignore[no-untyped-def]
    body = details()
    row = Institution(id=f"inst-{uuid.uuid4().hex[:12]}", status=status, attempt=1, **body)
    async with sessions() as session, session.begin():
        session.add(row)
    return row


async def test_reverification_only_of_an_approved_institution_and_only_by_its_managers(
    api: httpx.AsyncClient, sessions, client: Client
) -> None:  # type: ignore[no-untyped-def]
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    admin = await login(api, admin_user)
    approved = await _with_status(sessions, "approved")
    url = f"{URL}/{approved.id}/reverification"
    for role in (Role.DOCTOR, Role.FINANCE, Role.PATIENT, Role.PHARMACIST):
        user, _ = await make_user(sessions, role)
        refused = await api.post(url, headers=await login(api, user))
        assert (refused.status_code, refused.json()["code"]) == (403, "FORBIDDEN"), role
        listed = await api.get(f"{URL}/{approved.id}/reverifications", headers=await login(api, user))
        assert listed.status_code == 403, role
    assert (await api.post(url)).status_code == 401

    unknown = await api.post(f"{URL}/inst-nobody/reverification", headers=admin)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")
    assert unknown.headers["content-type"] == "application/problem+json"
    for status in ("draft", "submitted", "rejected"):
        row = await _with_status(sessions, status)
        answer = await api.post(f"{URL}/{row.id}/reverification", headers=admin)
        assert answer.status_code == 409, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert (answer.json()["code"], answer.json()["current_status"]) == ("INSTITUTION_NOT_APPROVED", status)

    keyed = admin | {"Idempotency-Key": f"reverify-{uuid.uuid4()}"}
    started = await api.post(url, headers=keyed)
    assert started.status_code == 202, started.text
    workflow_id = started.json()["workflow_id"]
    assert workflow_id.startswith(reverification_workflow_id(approved.id, ""))
    assert started.json() == {"institution_id": approved.id, "status": "approved", "workflow_id": workflow_id}
    # A retried request is the same one; asking again is a look-up of its own (the first may have looked up already).
    assert (await api.post(url, headers=keyed)).json() == started.json()
    again = await api.post(url, headers=admin)
    assert again.status_code == 202 and again.json()["workflow_id"] != workflow_id
    # No worker runs here: both look-ups wait.
    for running in (workflow_id, again.json()["workflow_id"]):
        await client.get_workflow_handle(running).terminate("test over")
    assert (await api.get(f"{URL}/{approved.id}/reverifications", headers=admin)).json() == []
    assert (await api.get(f"{URL}/inst-nobody/reverifications", headers=admin)).status_code == 404


async def test_the_outcomes_are_listed_newest_first(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    admin = await login(api, admin_user)
    row = await _with_status(sessions, "approved")
    first, later = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)
    record = {"found": True, "code": row.code, "name": row.name, "kind": row.kind, "approved": False}
    async with sessions() as session, session.begin():
        session.add_all(
            [
                InstitutionReverification(
                    id=f"run-1:{row.id}",
                    institution_id=row.id,
                    requested_by="system",
                    checked_at=first,
                    verified=True,
                    detail="监管平台查询结果与登记信息一致",
                    platform_record={**record, "approved": True},
                    status_before="approved",
                    status_after="approved",
                ),
                InstitutionReverification(
                    id=f"run-2:{row.id}",
                    institution_id=row.id,
                    requested_by=admin_user,
                    checked_at=later,
                    verified=False,
                    detail="监管平台显示该机构未获批准",
                    platform_record=record,
                    status_before="approved",
                    status_after="suspended",
                ),
            ]
        )
    listed = (await api.get(f"{URL}/{row.id}/reverifications", headers=admin)).json()
    assert [(item["requested_by"], item["status_after"]) for item in listed] == [
        (admin_user, "suspended"),
        ("system", "approved"),
    ]
    assert listed[0]["platform_record"] == record and listed[0]["checked_at"].startswith("2026-12-02")


async def test_a_suspended_institution_takes_no_new_bookings(api: httpx.AsyncClient, sessions, settings) -> None:  # type: ignore[no-untyped-def]
    department_id = await make_department(sessions)
    _, doctor_id = await make_user(sessions, Role.DOCTOR, department_id=department_id)
    assert doctor_id is not None
    clinic = Clinic(sessions, settings, doctor_id, await make_disease(sessions, department_id))
    patient = await clinic.patient()
    open_slot, taken = await clinic.slot(), await clinic.taken_slot()

    suspended = await _with_status(sessions, "suspended")
    try:
        refused = await book(api, patient, open_slot)
        body = assert_problem(refused, 409, "INSTITUTION_SUSPENDED")
        assert "暂停" in body["detail"]
        async with sessions() as session:
            slot = await session.get(Slot, open_slot)
        assert slot is not None and (slot.status, slot.patient_id) == ("open", None)
    finally:
        async with sessions() as session, session.begin():
            await session.execute(
                update(Institution).where(col(Institution.id) == suspended.id).values(status="approved")
            )
    # Reinstated: the same patient's attempt passes every check again (the slot taken by someone else shows it).
    assert_problem(await book(api, patient, taken), 409, "SLOT_TAKEN")

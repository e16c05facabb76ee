"""Doctors and pharmacists registering (8.5.2.1, 8.5.3.1): validation, the applicant's restricted session, documents
sealed at rest, submitting; admins' batch creation with its dry run, the review queue and document views; accounts
switched off and on; prescribing rights an admin can take away (8.5.2.4). The review itself runs in the flow (see
tests/workflows/test_onboarding.py and tests/e2e/test_staff_onboarding.py)."""

from __future__ import annotations

import os
import uuid
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlmodel import col
from temporalio.client import Client

from activities.adapters.practitioner.sandbox import sandbox_licence
from core.crypto.sm import sm3_hex
from models import idcard
from models.common import Role
from models.tables import AuditEvent, StaffApplication, StaffDocument, User
from tests.api.helpers import PASSWORD, login, make_department, make_user, unique
from workflows.onboarding import onboarding_workflow_id

REGISTER = "/api/v1/staff-applications"
MINE = "/api/v1/staff-applications/me"
ADMIN = "/api/v1/admin/staff-applications"
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(1024)
PDF = b"%PDF-1.7\n" + os.urandom(1024)


def problem(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert body["code"] == code, body
    return body


async def doctor_body(sessions, **overrides: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {
        "role": "doctor",
        "username": unique("dr"),
        "password": PASSWORD,
        "name": "李时珍",
        "id_card_no": idcard.random_valid(),
        "phone": "13912345678",
        "department_id": await make_department(sessions),
        "title": "主治医师",
        "licence_no": sandbox_licence(date(2016, 4, 1), serial=uuid.uuid4().int % 999_998 + 1),
        "licence_date": "2016-04-01",
        **overrides,
    }


async def registered(api: httpx.AsyncClient, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    answer = await api.post(REGISTER, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json(), await login(api, body["username"], body["password"])


async def upload(
    api: httpx.AsyncClient, headers: dict[str, str], kind: str, data: bytes, content_type: str
) -> httpx.Response:
    return await api.post(
        f"{MINE}/documents", data={"kind": kind}, files={"file": ("doc", data, content_type)}, headers=headers
    )


async def admin_headers(api: httpx.AsyncClient, sessions) -> dict[str, str]:  # type: ignore[no-untyped-def]
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    return await login(api, admin_user)


async def test_registration_is_checked_field_by_field(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    body = await doctor_body(sessions)
    wrong_check = body["id_card_no"][:17] + ("0" if body["id_card_no"][17] != "0" else "1")
    bad = await api.post(
        REGISTER,
        json={
            **body,
            "id_card_no": wrong_check,
            "password": "short",
            "department_id": None,
            "licence_date": "2999-01-01",
        },
    )
    errors = {error["field"]: error["type"] for error in problem(bad, 422, "INVALID_APPLICATION")["errors"]}
    assert errors["body.id_card_no"] == "INVALID_ID_CARD"
    assert errors["body.password"].startswith("password.")
    assert errors["body.department_id"] == "DEPARTMENT_REQUIRED"
    assert errors["body.licence_date"] == "LICENCE_DATE_IN_FUTURE"
    unknown = await api.post(REGISTER, json={**body, "department_id": "dep-none"})
    assert problem(unknown, 422, "INVALID_APPLICATION")["errors"][0]["type"] == "UNKNOWN_DEPARTMENT"

    await registered(api, body)
    problem(await api.post(REGISTER, json={**body, "id_card_no": idcard.random_valid()}), 409, "USERNAME_TAKEN")
    problem(await api.post(REGISTER, json={**body, "username": unique("dr")}), 409, "APPLICATION_EXISTS")


async def test_the_applicant_reaches_only_the_application(api: httpx.AsyncClient, sessions, settings) -> None:  # type: ignore[no-untyped-def]
    body = await doctor_body(sessions)
    created, applicant = await registered(api, body)
    assert created["status"] == "draft"
    assert created["missing_documents"] == ["id_photo", "practice_licence", "qualification"]
    token = await api.post("/api/v1/auth/token", data={"username": body["username"], "password": body["password"]})
    assert token.json()["scope"] == "applicant"

    problem(await api.get("/api/v1/me", headers=applicant), 403, "STAFF_NOT_APPROVED")
    problem(await api.get("/api/v1/prescriptions", headers=applicant), 403, "STAFF_NOT_APPROVED")
    # Enrolling a second factor proves who they are, not that they were approved.
    await api.post("/api/v1/auth/mfa/totp", headers=applicant)
    async with sessions() as session:
        scopes = (
            (
                await session.execute(
                    text(
                        "SELECT DISTINCT scope FROM access_tokens t JOIN users u ON u.id = t.user_id WHERE u.username = :u"
                    ),
                    {"u": body["username"]},
                )
            )
            .scalars()
            .all()
        )
    assert scopes == ["applicant"]

    uploaded = await upload(api, applicant, "id_photo", PNG, "image/png")
    assert uploaded.status_code == 201, uploaded.text
    [document] = uploaded.json()["documents"]
    assert (document["kind"], document["sm3"], document["size_bytes"]) == ("id_photo", sm3_hex(PNG), len(PNG))
    assert uploaded.json()["missing_documents"] == ["practice_licence", "qualification"]
    async with sessions() as session:
        stored = await session.get(StaffDocument, document["id"])
    assert stored is not None and PNG[16:64] not in stored.data_enc  # sealed, not stored as sent

    problem(
        await upload(api, applicant, "practice_licence", b"GIF89a" + PNG, "image/gif"), 415, "MEDIA_TYPE_NOT_ALLOWED"
    )
    problem(await upload(api, applicant, "practice_licence", PNG, "application/pdf"), 422, "MEDIA_CONTENT_MISMATCH")
    problem(await upload(api, applicant, "practice_licence", b"", "image/png"), 422, "MEDIA_EMPTY")
    missing = problem(await api.post(f"{MINE}/submit", headers=applicant), 422, "DOCUMENTS_MISSING")
    assert missing["missing"] == ["practice_licence", "qualification"]

    # A patient has no application.
    patient_user, _ = await make_user(sessions, Role.PATIENT)
    problem(await api.get(MINE, headers=await login(api, patient_user)), 404, "NO_APPLICATION")


async def test_submitting_starts_the_flow_once_and_closes_the_application(
    api: httpx.AsyncClient,
    sessions,
    client: Client,  # type: ignore[no-untyped-def]
) -> None:
    body = await doctor_body(sessions)
    created, applicant = await registered(api, body)
    for kind, data, content_type in (
        ("id_photo", PNG, "image/png"),
        ("practice_licence", PDF, "application/pdf"),
        ("qualification", PNG, "image/png"),
    ):
        assert (await upload(api, applicant, kind, data, content_type)).status_code == 201
    submitted = await api.post(f"{MINE}/submit", headers=applicant)
    assert submitted.status_code == 202, submitted.text
    assert submitted.json() == {
        "staff_id": created["staff_id"],
        "status": "checking",
        "attempt": 1,
        "workflow_id": onboarding_workflow_id(created["staff_id"]),
    }
    # Asking again finds the same submission and the same flow (no worker runs in these tests: it waits).
    again = await api.post(f"{MINE}/submit", headers=applicant)
    assert again.status_code == 202 and again.json()["attempt"] == 1
    handle = client.get_workflow_handle(onboarding_workflow_id(created["staff_id"]))
    try:
        assert (await handle.describe()).workflow_type == "Onboarding"
        problem(await upload(api, applicant, "id_photo", PNG, "image/png"), 409, "APPLICATION_NOT_OPEN")
    finally:
        await handle.terminate("test over")


async def test_admins_list_view_and_read_documents_with_an_audit(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    body = await doctor_body(sessions)
    created, applicant = await registered(api, body)
    document = (await upload(api, applicant, "id_photo", PNG, "image/png")).json()["documents"][0]
    admin = await admin_headers(api, sessions)

    listed = await api.get(ADMIN, params={"status": "draft", "role": "doctor", "limit": 100}, headers=admin)
    assert listed.status_code == 200, listed.text
    assert created["staff_id"] in {item["staff_id"] for item in listed.json()["items"]}
    detail = (await api.get(f"{ADMIN}/{created['staff_id']}", headers=admin)).json()
    assert detail["username"] == body["username"] and detail["licence_no"] == body["licence_no"]
    assert detail["id_card_masked"] != body["id_card_no"] and detail["id_card_masked"].endswith(body["id_card_no"][-4:])
    assert detail["phone_masked"] == "139****5678"

    read = await api.get(f"{ADMIN}/{created['staff_id']}/documents/{document['id']}", headers=admin)
    assert read.status_code == 200 and read.content == PNG
    assert read.headers["content-type"] == "image/png" and read.headers["x-content-sm3"] == sm3_hex(PNG)
    async with sessions() as session:
        actions = (
            (
                await session.execute(
                    select(col(AuditEvent.action)).where(col(AuditEvent.subject_id) == created["staff_id"])
                )
            )
            .scalars()
            .all()
        )
    assert {"staff.registered", "staff.document_uploaded", "staff_document.read"} <= set(actions)
    problem(await api.get(f"{ADMIN}/{created['staff_id']}/documents/sdoc-none", headers=admin), 404, "NOT_FOUND")

    # Reviewing is for holders of the staff review permission; and only for a submitted application.
    doctor_user, _ = await make_user(sessions, Role.DOCTOR)
    problem(await api.get(ADMIN, headers=await login(api, doctor_user)), 403, "FORBIDDEN")
    review = await api.post(f"{ADMIN}/{created['staff_id']}/review", json={"approve": True}, headers=admin)
    problem(review, 404, "NOT_FOUND")


def csv(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


async def test_batch_creation_dry_run_reports_bad_rows_by_line(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    admin = await admin_headers(api, sessions)
    department = await make_department(sessions)
    taken_user, _ = await make_user(sessions, Role.PATIENT)
    good_doctor, good_pharmacist = unique("dr"), unique("ph")
    header = "角色,用户名,姓名,身份证号,手机号,执业证书编码,执业证书日期,科室编号,职称,药师来源"
    rows = [
        f"医生,{good_doctor},张仲景,{idcard.random_valid()},13800000001,220100101000001,2010-01-01,{department},主任医师,",
        f"药师,{good_pharmacist},孙思邈,{idcard.random_valid()},13800000002,PH0001,2012-06-30,,,第三方",
        f"护士,{unique('x')},华佗,{idcard.random_valid()},13800000003,1,2010-01-01,{department},,",  # line 4: role
        f"医生,{unique('x')},华佗,110105194912310021,13800000004,1,2010-01-01,{department},,",  # line 5: ID
        f"医生,{good_doctor},扁鹊,{idcard.random_valid()},13800000005,1,2010-01-01,{department},,",  # line 6: dup
        f"医生,{taken_user},扁鹊,{idcard.random_valid()},13800000006,1,2010-01-01,dep-none,,",  # line 7: taken, dept
        f"医生,{unique('x')},扁鹊,{idcard.random_valid()},1380000,1,2010-13-01,{department},,",  # line 8: phone, date
    ]
    file = {"file": ("staff.csv", csv(header, *rows), "text/csv")}
    dry = await api.post(f"{ADMIN}/import", params={"dry_run": "true"}, files=file, headers=admin)
    assert dry.status_code == 200, dry.text
    report = dry.json()
    assert report["ok"] is False and report["rows"] == 7 and report["accounts"] == []
    found = {(error["line"], error["column"], error["code"]) for error in report["errors"]}
    assert found == {
        (4, "role", "BAD_ROLE"),
        (5, "id_card_no", "INVALID_ID_CARD"),
        (6, "username", "DUPLICATE_ROW"),
        (7, "username", "USERNAME_TAKEN"),
        (7, "department_id", "UNKNOWN_DEPARTMENT"),
        (8, "phone", "BAD_PHONE"),
        (8, "licence_date", "BAD_DATE"),
    }
    rejected = await api.post(f"{ADMIN}/import", files=file, headers=admin)
    assert problem(rejected, 422, "IMPORT_REJECTED")["errors"]
    async with sessions() as session:  # nothing of the good rows either: the import is all or nothing
        for username in (good_doctor, good_pharmacist):
            assert (await session.execute(select(User).where(col(User.username) == username))).first() is None

    created = await api.post(
        f"{ADMIN}/import", files={"file": ("staff.csv", csv(header, *rows[:2]), "text/csv")}, headers=admin
    )
    assert created.status_code == 201, created.text
    accounts = created.json()["accounts"]
    assert [(account["line"], account["username"]) for account in accounts] == [(2, good_doctor), (3, good_pharmacist)]
    # Each person signs in with the password shown once, must change it (tests/api/test_initial_password.py), and
    # then lands in their application.
    pharmacist = await login(api, good_pharmacist, accounts[1]["initial_password"])
    problem(await api.get(MINE, headers=pharmacist), 403, "PASSWORD_CHANGE_REQUIRED")
    change = {"old_password": accounts[1]["initial_password"], "new_password": "Own-choice#2026"}
    assert (await api.post("/api/v1/auth/password", json=change, headers=pharmacist)).status_code == 204
    mine = (await api.get(MINE, headers=pharmacist)).json()
    assert (mine["role"], mine["affiliation"]) == ("pharmacist", "third_party")
    assert mine["missing_documents"] == ["id_photo", "practice_licence", "agreement"]
    async with sessions() as session:
        stored = await session.get(StaffApplication, accounts[0]["staff_id"])
    assert stored is not None and (stored.source, stored.title, stored.department_id) == (
        "import",
        "主任医师",
        department,
    )


async def test_admins_switch_accounts_off_and_on(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    admin = await login(api, admin_user)
    doctor_user, _ = await make_user(sessions, Role.DOCTOR)
    doctor = await login(api, doctor_user)
    off = await api.post(f"/api/v1/admin/users/{doctor_user}/disable", json={"reason": "停诊调离"}, headers=admin)
    assert off.status_code == 200, off.text
    assert off.json() == {"user_id": doctor_user, "disabled": True, "sessions_ended": 1}
    assert (await api.get("/api/v1/me", headers=doctor)).status_code == 401
    refused = await api.post("/api/v1/auth/token", data={"username": doctor_user, "password": PASSWORD})
    problem(refused, 403, "ACCOUNT_DISABLED")
    problem(
        await api.post(f"/api/v1/admin/users/{admin_user}/disable", json={"reason": "x"}, headers=admin),
        409,
        "CANNOT_DISABLE_SELF",
    )

    on = await api.post(f"/api/v1/admin/users/{doctor_user}/enable", json={"reason": "恢复出诊"}, headers=admin)
    assert on.json()["disabled"] is False
    assert (await api.get("/api/v1/me", headers=await login(api, doctor_user))).status_code == 200
    async with sessions() as session:
        actions = (
            (await session.execute(select(col(AuditEvent.action)).where(col(AuditEvent.subject_id) == doctor_user)))
            .scalars()
            .all()
        )
    assert {"account.disabled", "account.enabled"} <= set(actions)


@pytest.mark.parametrize("visit_id", ["visit-none"])
async def test_an_admin_takes_a_doctors_prescribing_right_away(api: httpx.AsyncClient, sessions, visit_id: str) -> None:  # type: ignore[no-untyped-def]
    admin = await admin_headers(api, sessions)
    doctor_user, _ = await make_user(sessions, Role.DOCTOR)
    doctor = await login(api, doctor_user)
    prescribe = f"/api/v1/visits/{visit_id}/prescriptions"
    body = {"disease_code": "X", "items": []}
    # With the right, the visit's existence decides (this one does not exist).
    assert (await api.post(prescribe, json=body, headers=doctor)).status_code in (404, 422)
    revoke = {"effect": "revoke", "reason": "处方权暂停"}
    answer = await api.put(f"/api/v1/admin/users/{doctor_user}/permissions/rx.prescribe", json=revoke, headers=admin)
    assert answer.status_code == 200, answer.text
    refused = problem(await api.post(prescribe, json=body, headers=doctor), 403, "FORBIDDEN")
    assert refused["permission"] == "rx.prescribe"
    sign = await api.post("/api/v1/prescriptions/rx-none/sign", json={"reason": None}, headers=doctor)
    problem(sign, 403, "FORBIDDEN")

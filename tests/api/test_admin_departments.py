"""Admins keep departments within the physical hospital's registered 诊疗科目 (互联网诊疗管理办法); the public catalogue
offers no department outside them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api.hospital_time import hospital_today
from api.main import create_app
from core.settings import Settings
from models.common import Role
from tests.api.helpers import make_department, make_disease, make_slot, make_user, unique
from tests.api.scheduling import Clinic, audit_events, make_clinic

URL = "/api/v1/admin/departments"


@pytest.fixture
async def clinic(api, sessions) -> Clinic:
    return await make_clinic(api, sessions)


async def _admin_view(api, clinic: Clinic, department_id: str) -> dict:
    listed = await api.get(URL, headers=clinic.headers["admin"])
    assert listed.status_code == 200, listed.text
    return {department["id"]: department for department in listed.json()}[department_id]


async def test_admin_creates_a_department_within_the_registered_subjects(api, sessions, clinic: Clinic) -> None:
    body = {"id": unique("dept"), "name": "儿科", "description": "小儿咳嗽的复诊调理。", "subject_code": "50.04"}
    headers = {**clinic.headers["admin"], "Idempotency-Key": unique("key")}
    created = await api.post(URL, json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json() == {**body, "subject_name": "儿科专业", "in_scope": True, "active": True}
    replayed = await api.post(URL, json=body, headers=headers)
    assert (replayed.status_code, replayed.headers["Idempotent-Replayed"]) == (201, "true")
    assert await _admin_view(api, clinic, body["id"]) == created.json()

    public = {department["id"]: department for department in (await api.get("/api/v1/departments")).json()}
    assert public[body["id"]]["subject_code"] == "50.04"
    assert public[body["id"]]["subject_name"] == "儿科专业"

    [event] = await audit_events(sessions, body["id"])
    assert (event.action, event.actor_user_id, event.detail) == (
        "department.created",
        clinic.admin_user,
        {"subject_code": "50.04"},
    )


async def test_a_subject_outside_the_registration_is_refused(api, clinic: Clinic) -> None:
    department_id = unique("dept")
    body = {"id": department_id, "name": "眼科", "subject_code": "50.06"}
    refused = await api.post(URL, json=body, headers=clinic.headers["admin"])
    assert (refused.status_code, refused.json()["code"]) == (422, "SUBJECT_NOT_REGISTERED")
    assert "50.06" in refused.json()["detail"]
    assert department_id not in {
        department["id"] for department in (await api.get(URL, headers=clinic.headers["admin"])).json()
    }

    patched = await api.patch(
        f"{URL}/{clinic.department}", json={"subject_code": "50.06"}, headers=clinic.headers["admin"]
    )
    assert (patched.status_code, patched.json()["code"]) == (422, "SUBJECT_NOT_REGISTERED")
    assert (await _admin_view(api, clinic, clinic.department))["subject_code"] == "50.01"


async def test_a_department_id_is_taken_once(api, clinic: Clinic) -> None:
    body = {"id": clinic.department, "name": "脾胃病科", "subject_code": "50.01"}
    duplicate = await api.post(URL, json=body, headers=clinic.headers["admin"])
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "DEPARTMENT_EXISTS")


async def test_admin_edits_a_department(api, sessions, clinic: Clinic) -> None:
    url = f"{URL}/{clinic.department}"
    changed = await api.patch(url, json={"name": "针灸科", "subject_code": "50.13"}, headers=clinic.headers["admin"])
    assert changed.status_code == 200, changed.text
    answer = changed.json()
    assert (answer["id"], answer["name"], answer["description"]) == (clinic.department, "针灸科", "脾胃病科（测试）")
    assert (answer["subject_code"], answer["subject_name"], answer["in_scope"]) == ("50.13", "针灸科专业", True)
    # Unchanged fields write no audit row.
    assert (await api.patch(url, json={"name": "针灸科"}, headers=clinic.headers["admin"])).status_code == 200
    [event] = await audit_events(sessions, clinic.department)
    assert event.action == "department.updated"
    assert event.detail == {"changes": {"name": "针灸科", "subject_code": "50.13"}}

    missing = await api.patch(f"{URL}/dept-missing", json={"name": "x"}, headers=clinic.headers["admin"])
    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")


async def test_a_disabled_department_leaves_the_public_catalogue_until_enabled(api, sessions, clinic: Clinic) -> None:
    """8.6.1 b 禁用科室: the department and its doctors are no longer offered; enabling it brings them back."""
    url = f"{URL}/{clinic.department}"

    async def offered() -> tuple[bool, bool]:
        departments = {d["id"] for d in (await api.get("/api/v1/departments")).json()}
        doctors = await api.get(f"/api/v1/departments/{clinic.department}/doctors")
        return clinic.department in departments, doctors.status_code == 200

    assert await offered() == (True, True)
    disabled = await api.patch(url, json={"active": False}, headers=clinic.headers["admin"])
    assert (disabled.status_code, disabled.json()["active"]) == (200, False)
    assert await offered() == (False, False)
    assert (await _admin_view(api, clinic, clinic.department))["active"] is False
    enabled = await api.patch(url, json={"active": True}, headers=clinic.headers["admin"])
    assert (enabled.status_code, enabled.json()["active"]) == (200, True)
    assert await offered() == (True, True)
    events = await audit_events(sessions, clinic.department)
    assert [event.detail for event in events] == [{"changes": {"active": False}}, {"changes": {"active": True}}]


async def test_only_admins_keep_departments(api, clinic: Clinic) -> None:
    body = {"id": unique("dept"), "name": "儿科", "subject_code": "50.04"}
    for role in ("attending", "patient"):
        headers = clinic.headers[role]
        assert (await api.get(URL, headers=headers)).status_code == 403
        assert (await api.post(URL, json=body, headers=headers)).status_code == 403
        patched = await api.patch(f"{URL}/{clinic.department}", json={"name": "x"}, headers=headers)
        assert patched.status_code == 403
    assert (await api.get(URL)).status_code == 401


async def test_the_public_is_not_offered_a_department_outside_the_registration(
    api, sessions, clinic: Clinic, database_url, client
) -> None:
    """A department on a subject struck from the registration (here: one the settings no longer list)."""
    department = await make_department(sessions, "针灸推拿科", subject_code="50.13")
    disease = await make_disease(sessions, department, "项痹")
    _, doctor = await make_user(sessions, Role.DOCTOR, department_id=department)
    assert doctor is not None
    await make_slot(sessions, doctor, disease, datetime.now(UTC) + timedelta(days=1))
    day = (hospital_today() + timedelta(days=1)).isoformat()

    narrowed = Settings(  # type: ignore[call-arg]
        database_url=database_url, registered_subjects={"50": "中医科", "50.01": "内科专业"}
    )
    app = create_app(narrowed, temporal_client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        listed = {department["id"] for department in (await http.get("/api/v1/departments")).json()}
        assert clinic.department in listed and department not in listed
        assert (await http.get(f"/api/v1/departments/{department}/doctors")).status_code == 404
        doctors = (await http.get("/api/v1/doctors", params={"department_id": department})).json()
        assert doctors["items"] == []
        slots = (await http.get(f"/api/v1/doctors/{doctor}/slots", params={"date": day})).json()
        assert [slot["status"] for slot in slots] == ["unavailable"]
        info = (await http.get("/api/v1/service-info")).json()
        assert department not in {scope["id"] for scope in info["scope"]["departments"]}

        admin = (await http.get(URL, headers=clinic.headers["admin"])).json()
        flagged = {row["id"]: row for row in admin}[department]
        assert (flagged["subject_name"], flagged["in_scope"]) == (None, False)

    # Under the default registration the same department is offered.
    listed = {department["id"] for department in (await api.get("/api/v1/departments")).json()}
    assert department in listed
    slots = (await api.get(f"/api/v1/doctors/{doctor}/slots", params={"date": day})).json()
    assert [slot["status"] for slot in slots] == ["open"]

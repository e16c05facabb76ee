"""Admins keep a doctor's public profile and fees (8.1.1.3, 8.6.1 c); each change is audited."""

from __future__ import annotations

import pytest

from tests.api.scheduling import SCHEDULES, Clinic, audit_events, make_clinic, publish, session_body


@pytest.fixture
async def clinic(api, sessions) -> Clinic:
    return await make_clinic(api, sessions)


async def test_admin_sets_profile_and_fees(api, sessions, clinic: Clinic) -> None:
    url = f"/api/v1/admin/doctors/{clinic.attending}"
    change = {
        "title": "副主任医师",
        "specialties": "慢性胃炎、功能性消化不良",
        "introduction": "从事中医脾胃病临床二十年。",
        "photo_url": "https://static.example.org/doctors/wang.jpg",
        "service_fees": {"text": 3500, "phone": 4500},
    }
    response = await api.patch(url, json=change, headers=clinic.headers["admin"])
    assert response.status_code == 200, response.text
    public = (await api.get(f"/api/v1/doctors/{clinic.attending}")).json()
    assert {name: public[name] for name in change} == change

    # New sessions are priced by the doctor's own fees, and only for the service types the doctor offers.
    phone = await publish(api, clinic, service_type="phone")
    assert phone["fee_fen"] == 4500
    video = await api.post(
        SCHEDULES,
        json=session_body(clinic, service_type="video", start="14:00", end="15:30"),
        headers=clinic.headers["admin"],
    )
    assert video.json()["code"] == "SERVICE_TYPE_NOT_OFFERED"

    cleared = await api.patch(url, json={"photo_url": None, "specialties": None}, headers=clinic.headers["admin"])
    assert cleared.json()["photo_url"] is None
    assert cleared.json()["specialties"] == change["specialties"]  # null leaves other fields as they are

    events = await audit_events(sessions, clinic.attending)
    assert [event.action for event in events] == ["doctor.updated", "doctor.updated"]
    assert events[0].detail["changes"]["service_fees"] == {"text": 3500, "phone": 4500}
    assert events[1].detail["changes"] == {"photo_url": None}
    assert events[0].actor_user_id == clinic.admin_user


async def test_an_unchanged_patch_writes_no_audit(api, sessions, clinic: Clinic) -> None:
    url = f"/api/v1/admin/doctors/{clinic.attending}"
    response = await api.patch(url, json={"title": "主治医师"}, headers=clinic.headers["admin"])
    assert response.status_code == 200
    assert await audit_events(sessions, clinic.attending) == []


async def test_deactivating_a_doctor_stops_new_sessions(api, clinic: Clinic) -> None:
    url = f"/api/v1/admin/doctors/{clinic.attending}"
    assert (await api.patch(url, json={"active": False}, headers=clinic.headers["admin"])).json()["active"] is False
    refused = await api.post(SCHEDULES, json=session_body(clinic), headers=clinic.headers["admin"])
    assert (refused.status_code, refused.json()["code"]) == (422, "DOCTOR_INACTIVE")
    listed = await api.get("/api/v1/doctors", params={"department_id": clinic.department})
    assert [doctor["id"] for doctor in listed.json()["items"]] == [clinic.chief]


@pytest.mark.parametrize(
    "change",
    [
        {"title": "院长"},
        {"photo_url": "javascript:alert(1)"},
        {"service_fees": {"门诊": 100}},
        {"service_fees": {"text": -1}},
        {"service_fees": {"text": 1.5}},
        {"name": "改名"},
        {"active": "maybe"},
    ],
)
async def test_bad_changes_are_field_errors(api, clinic: Clinic, change) -> None:
    response = await api.patch(
        f"/api/v1/admin/doctors/{clinic.attending}", json=change, headers=clinic.headers["admin"]
    )
    assert (response.status_code, response.json()["code"]) == (422, "VALIDATION_FAILED")


async def test_only_admins_change_doctors(api, clinic: Clinic) -> None:
    url = f"/api/v1/admin/doctors/{clinic.attending}"
    for role in ("attending", "patient"):
        assert (await api.patch(url, json={"active": False}, headers=clinic.headers[role])).status_code == 403
    missing = await api.patch(
        "/api/v1/admin/doctors/doc-missing", json={"active": False}, headers=clinic.headers["admin"]
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")

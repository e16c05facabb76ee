"""Public catalogue reads and their filters; a lapsed hold counts as open."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest

from api.hospital_time import SHANGHAI
from models.common import Role
from tests.api.helpers import make_department, make_disease, make_slot, make_user


@dataclass
class Hospital:
    department: str
    other_department: str
    disease: str
    other_disease: str
    chief: str  # 主任医师: an open slot tomorrow
    attending: str  # 主治医师: booked tomorrow, a lapsed hold the day after
    other: str  # other department: held (live hold) tomorrow
    tomorrow: date
    day_after: date
    slots: dict[str, str]


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), SHANGHAI)


@pytest.fixture
async def hospital(sessions) -> Hospital:
    department = await make_department(sessions, "脾胃病科")
    other_department = await make_department(sessions, "心病科")
    disease = await make_disease(sessions, department, "胃脘痛")
    other_disease = await make_disease(sessions, other_department, "心悸")
    _, chief = await make_user(
        sessions, Role.DOCTOR, department_id=department, doctor_title="主任医师", display_name="李一"
    )
    _, attending = await make_user(
        sessions, Role.DOCTOR, department_id=department, doctor_title="主治医师", display_name="李二"
    )
    _, other = await make_user(sessions, Role.DOCTOR, department_id=other_department, display_name="王三")
    assert chief and attending and other
    now = datetime.now(UTC)
    tomorrow = now.astimezone(SHANGHAI).date() + timedelta(days=1)
    day_after = tomorrow + timedelta(days=1)
    slots = {
        "chief_open": await make_slot(sessions, chief, disease, _at(tomorrow, 9)),
        "chief_past": await make_slot(sessions, chief, other_disease, now - timedelta(days=1)),
        "attending_booked": await make_slot(sessions, attending, disease, _at(tomorrow, 9), status="booked"),
        "attending_lapsed": await make_slot(
            sessions, attending, disease, _at(day_after, 9), status="held", held_until=now - timedelta(minutes=1)
        ),
        "other_held": await make_slot(
            sessions, other, other_disease, _at(tomorrow, 10), status="held", held_until=now + timedelta(minutes=15)
        ),
    }
    return Hospital(
        department, other_department, disease, other_disease, chief, attending, other, tomorrow, day_after, slots
    )


async def _doctor_ids(api, **params) -> list[str]:
    response = await api.get("/api/v1/doctors", params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == len(page["items"])
    return [doctor["id"] for doctor in page["items"]]


async def test_departments_and_their_doctors(api, hospital: Hospital) -> None:
    departments = {dep["id"]: dep for dep in (await api.get("/api/v1/departments")).json()}
    assert departments[hospital.department]["name"] == "脾胃病科"

    page = (await api.get(f"/api/v1/departments/{hospital.department}/doctors")).json()
    assert [doctor["id"] for doctor in page["items"]] == [hospital.chief, hospital.attending]
    assert page["items"][0]["department_name"] == "脾胃病科"

    missing = await api.get("/api/v1/departments/dep-missing/doctors")
    assert missing.status_code == 404
    assert missing.json()["code"] == "NOT_FOUND"


async def test_doctor_filters(api, hospital: Hospital) -> None:
    dep, tomorrow, day_after = hospital.department, hospital.tomorrow.isoformat(), hospital.day_after.isoformat()
    assert await _doctor_ids(api, department_id=dep, title="主任医师") == [hospital.chief]
    assert await _doctor_ids(api, disease_code=hospital.disease) == [hospital.chief, hospital.attending]
    # The chief's only slot for the other disease is in the past.
    assert await _doctor_ids(api, disease_code=hospital.other_disease) == [hospital.other]
    assert await _doctor_ids(api, department_id=dep, date=tomorrow) == [hospital.chief, hospital.attending]
    assert await _doctor_ids(api, department_id=dep, date=tomorrow, available="true") == [hospital.chief]
    assert await _doctor_ids(api, department_id=dep, date=day_after, available="true") == [hospital.attending]
    assert await _doctor_ids(api, disease_code=hospital.other_disease, available="true") == []
    assert await _doctor_ids(api, department_id=hospital.other_department, available="false") == [hospital.other]


async def test_doctor_list_pages(api, hospital: Hospital) -> None:
    page = (
        await api.get("/api/v1/doctors", params={"department_id": hospital.department, "limit": 1, "offset": 1})
    ).json()
    assert page["total"] == 2
    assert [doctor["id"] for doctor in page["items"]] == [hospital.attending]
    too_many = await api.get("/api/v1/doctors", params={"limit": 1000})
    assert too_many.status_code == 422


async def test_doctor_detail(api, hospital: Hospital) -> None:
    doctor = (await api.get(f"/api/v1/doctors/{hospital.chief}")).json()
    assert doctor["title"] == "主任医师"
    assert doctor["department_id"] == hospital.department
    assert (await api.get("/api/v1/doctors/doc-missing")).status_code == 404


async def test_slots_of_a_day_show_what_can_be_booked(api, hospital: Hospital) -> None:
    def statuses(response) -> dict[str, str]:
        assert response.status_code == 200, response.text
        return {slot["id"]: slot["status"] for slot in response.json()}

    slots, tomorrow, day_after = hospital.slots, hospital.tomorrow.isoformat(), hospital.day_after.isoformat()
    chief = await api.get(f"/api/v1/doctors/{hospital.chief}/slots", params={"date": tomorrow})
    assert statuses(chief) == {slots["chief_open"]: "open"}
    assert chief.json()[0]["fee_fen"] == 5000
    assert "patient_id" not in chief.json()[0]
    attending = f"/api/v1/doctors/{hospital.attending}/slots"
    assert statuses(await api.get(attending, params={"date": tomorrow})) == {slots["attending_booked"]: "unavailable"}
    assert statuses(await api.get(attending, params={"date": day_after})) == {slots["attending_lapsed"]: "open"}
    held = await api.get(f"/api/v1/doctors/{hospital.other}/slots", params={"date": tomorrow})
    assert statuses(held) == {slots["other_held"]: "unavailable"}
    assert (await api.get("/api/v1/doctors/doc-missing/slots")).status_code == 404


async def test_diseases_by_department(api, hospital: Hospital) -> None:
    diseases = (await api.get("/api/v1/diseases", params={"department_id": hospital.department})).json()
    assert diseases == [{"code": hospital.disease, "name": "胃脘痛", "department_id": hospital.department}]
    everything = {disease["code"] for disease in (await api.get("/api/v1/diseases")).json()}
    assert {hospital.disease, hospital.other_disease} <= everything

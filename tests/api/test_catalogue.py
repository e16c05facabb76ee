"""Public catalogue reads and their filters; a lapsed hold counts as open, a reserved extra slot does not; the
published service information and the stop/substitution notices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import httpx
import pytest

from api.hospital_time import SHANGHAI
from api.main import create_app
from core.settings import Settings
from models.common import Role
from models.tables import Doctor, Schedule, ScheduleChange, Slot
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


async def _update(sessions, model, key: str, **values) -> None:  # type: ignore[no-untyped-def]
    async with sessions() as session, session.begin():
        row = await session.get(model, key)
        assert row is not None
        for name, value in values.items():
            setattr(row, name, value)


async def test_doctor_filters_on_specialty_service_type_and_fee(api, sessions, hospital: Hospital) -> None:
    dep, tomorrow = hospital.department, hospital.tomorrow.isoformat()
    await _update(sessions, Doctor, hospital.chief, specialties="慢性胃炎、失眠、100%_调理")
    await _update(sessions, Doctor, hospital.attending, specialties="便秘、胃炎")
    video = await make_slot(sessions, hospital.attending, hospital.disease, _at(hospital.tomorrow, 11), fee_fen=8000)
    await _update(sessions, Slot, video, service_type="video")

    assert await _doctor_ids(api, department_id=dep, specialty="胃炎") == [hospital.chief, hospital.attending]
    assert await _doctor_ids(api, department_id=dep, specialty="失眠") == [hospital.chief]
    # LIKE wildcards in the query are taken literally.
    assert await _doctor_ids(api, department_id=dep, specialty="%_") == [hospital.chief]
    assert await _doctor_ids(api, department_id=dep, specialty="_") == [hospital.chief]
    assert await _doctor_ids(api, department_id=dep, service_type="video") == [hospital.attending]
    assert await _doctor_ids(api, department_id=dep, service_type="text", date=tomorrow) == [
        hospital.chief,
        hospital.attending,
    ]
    # The fee range, the day and availability are met by one and the same slot.
    assert await _doctor_ids(api, department_id=dep, min_fee_fen=6000) == [hospital.attending]
    assert await _doctor_ids(api, department_id=dep, max_fee_fen=5000) == [hospital.chief, hospital.attending]
    assert await _doctor_ids(api, department_id=dep, min_fee_fen=6000, available="true") == [hospital.attending]
    assert await _doctor_ids(api, department_id=dep, service_type="video", date=hospital.day_after.isoformat()) == []

    reversed_range = await api.get("/api/v1/doctors", params={"min_fee_fen": 5000, "max_fee_fen": 100})
    assert (reversed_range.status_code, reversed_range.json()["code"]) == (422, "BAD_FEE_RANGE")
    assert (await api.get("/api/v1/doctors", params={"service_type": "门诊"})).status_code == 422
    assert (await api.get("/api/v1/doctors", params={"min_fee_fen": -1})).status_code == 422


async def test_public_doctor_shows_photo_and_service_fees(api, sessions, hospital: Hospital) -> None:
    await _update(
        sessions,
        Doctor,
        hospital.chief,
        photo_url="https://static.example.org/li.jpg",
        service_fees={"text": 5000, "video": 9000},
    )
    doctor = (await api.get(f"/api/v1/doctors/{hospital.chief}")).json()
    assert doctor["photo_url"] == "https://static.example.org/li.jpg"
    assert doctor["service_fees"] == {"text": 5000, "video": 9000}
    assert doctor["active"] is True


async def test_inactive_doctors_are_not_listed_and_take_no_bookings(api, sessions, hospital: Hospital) -> None:
    await _update(sessions, Doctor, hospital.chief, active=False)
    assert await _doctor_ids(api, department_id=hospital.department) == [hospital.attending]
    page = (await api.get(f"/api/v1/departments/{hospital.department}/doctors")).json()
    assert [doctor["id"] for doctor in page["items"]] == [hospital.attending]
    detail = await api.get(f"/api/v1/doctors/{hospital.chief}")
    assert (detail.status_code, detail.json()["active"]) == (200, False)
    slots = await api.get(f"/api/v1/doctors/{hospital.chief}/slots", params={"date": hospital.tomorrow.isoformat()})
    assert [slot["status"] for slot in slots.json()] == ["unavailable"]


async def test_a_slot_reserved_for_a_named_patient_is_unavailable_to_everyone_else(
    api, sessions, hospital: Hospital
) -> None:
    _, patient = await make_user(sessions, Role.PATIENT)
    await _update(sessions, Slot, hospital.slots["chief_open"], is_extra=True, reserved_for=patient)
    response = await api.get(f"/api/v1/doctors/{hospital.chief}/slots", params={"date": hospital.tomorrow.isoformat()})
    [slot] = response.json()
    assert (slot["status"], slot["reserved"], slot["is_extra"]) == ("unavailable", True, True)
    assert patient not in response.text
    dep, tomorrow = hospital.department, hospital.tomorrow.isoformat()
    assert await _doctor_ids(api, department_id=dep, date=tomorrow, available="true") == []


async def test_service_info_publishes_scope_admission_and_rules(api, hospital: Hospital, settings: Settings) -> None:
    response = await api.get("/api/v1/service-info")
    assert response.status_code == 200
    info = response.json()
    scope = info["scope"]
    department = next(item for item in scope["departments"] if item["id"] == hospital.department)
    assert [disease["code"] for disease in department["diseases"]] == [hospital.disease]
    assert [item["code"] for item in scope["service_types"]] == ["text", "phone", "video"]
    assert [item["title"] for item in scope["fee_standards"]] == ["主任医师", "副主任医师", "主治医师", "医师"]
    assert scope["fee_standards"][0]["fees"] == settings.fee_standards_fen["主任医师"]
    admission = info["admission"]
    assert admission["revisit_window_days"] == settings.revisit_window_days
    assert f"{settings.revisit_window_days} 天以内" in admission["conditions"][0]
    rules = info["booking_rules"]
    assert rules["pay_window_minutes"] == settings.registration_pay_window_s // 60
    assert rules["no_show"] == {
        "limit": settings.no_show_limit,
        "window_days": settings.no_show_window_days,
        "block_days": settings.no_show_block_days,
    }
    assert any(
        f"{settings.no_show_window_days} 天内爽约满 {settings.no_show_limit} 次" in rule for rule in rules["rules"]
    )
    assert "全额退还" in rules["cancel_policy"]


async def test_service_info_follows_the_settings(database_url, engine, client) -> None:  # type: ignore[no-untyped-def]
    configured = Settings(  # type: ignore[call-arg]
        database_url=database_url, registration_pay_window_s=600, revisit_window_days=90, no_show_limit=2
    )
    app = create_app(configured, temporal_client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        info = (await http.get("/api/v1/service-info")).json()
    assert info["booking_rules"]["pay_window_minutes"] == 10
    assert info["admission"]["revisit_window_days"] == 90
    assert info["booking_rules"]["no_show"]["limit"] == 2


async def _session_with_change(
    sessions, hospital: Hospital, day: date, hour: int, kind: str, substitute: str | None = None
) -> str:
    start = _at(day, hour)
    schedule_id = f"{hospital.chief}-{day:%Y%m%d}-{hour:02d}00"
    async with sessions() as session, session.begin():
        session.add(
            Schedule(
                id=schedule_id,
                doctor_id=hospital.chief,
                day=day,
                starts_at=start,
                ends_at=start + timedelta(hours=1),
                slot_minutes=15,
                capacity=4,
                fee_fen=5000,
                disease_code=hospital.disease,
                status="substituted" if substitute else "cancelled",
                substitute_doctor_id=substitute,
            )
        )
        await session.flush()
        session.add(
            ScheduleChange(
                id=f"chg-{schedule_id}",
                schedule_id=schedule_id,
                kind=kind,
                substitute_doctor_id=substitute,
                reason="外出会诊",
                requested_by="u-admin",
            )
        )
    return f"chg-{schedule_id}"


async def test_notices_list_upcoming_leaves_and_substitutions(api, sessions, hospital: Hospital) -> None:
    past = await _session_with_change(sessions, hospital, hospital.tomorrow - timedelta(days=3), 9, "leave")
    later = await _session_with_change(sessions, hospital, hospital.day_after, 9, "leave")
    sooner = await _session_with_change(
        sessions, hospital, hospital.tomorrow, 14, "substitution", substitute=hospital.attending
    )

    response = await api.get("/api/v1/notices", params={"department_id": hospital.department})
    assert response.status_code == 200
    page = response.json()
    assert [item["id"] for item in page["items"]] == [sooner, later]
    assert page["total"] == 2 and past not in response.text
    substitution, leave = page["items"]
    assert (substitution["kind"], substitution["kind_name"]) == ("substitution", "替诊")
    assert (substitution["doctor_name"], substitution["substitute_doctor_name"]) == ("李一", "李二")
    assert substitution["department_name"] == "脾胃病科"
    day = hospital.tomorrow
    assert substitution["message"] == f"李一主任医师 {day.month}月{day.day}日 14:00–15:00 的出诊改由李二主治医师替诊。"
    assert (leave["kind_name"], leave["substitute_doctor_id"]) == ("停诊", None)
    assert "停诊" in leave["message"]
    assert "外出会诊" not in response.text  # the reason is internal

    as_substitute = await api.get("/api/v1/notices", params={"doctor_id": hospital.attending})
    assert [item["id"] for item in as_substitute.json()["items"]] == [sooner]

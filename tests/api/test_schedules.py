"""Admin schedules (排班): publishing generates the slots, edits move them only while nobody holds one, every change
is audited; extra slots (加号) respect their cap even under concurrent requests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlmodel import col

from api.hospital_time import SHANGHAI
from models.tables import Notification, Schedule, Slot, Visit
from tests.api.scheduling import SCHEDULES, Clinic, audit_events, in_days, make_clinic, publish, session_body


@pytest.fixture
async def clinic(api, sessions) -> Clinic:
    return await make_clinic(api, sessions)


def _at(days: int, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(in_days(days), time(hour, minute), SHANGHAI)


async def _slots(sessions, schedule_id: str) -> list[Slot]:
    async with sessions() as session:
        rows = await session.execute(
            select(Slot).where(col(Slot.schedule_id) == schedule_id).order_by(col(Slot.starts_at), col(Slot.id))
        )
        return list(rows.scalars())


async def _set_status(sessions, slot_id: str, status: str, held_until: datetime | None = None) -> None:
    async with sessions() as session, session.begin():
        await session.execute(update(Slot).where(col(Slot.id) == slot_id).values(status=status, held_until=held_until))


async def test_publishing_generates_the_slots_priced_by_the_title_standard(api, sessions, clinic: Clinic) -> None:
    schedule = await publish(api, clinic)

    day = in_days(3)
    assert schedule["id"] == f"{clinic.attending}-{day:%Y%m%d}-0830"
    assert schedule["fee_fen"] == 2000  # 主治医师 图文, from the default fee standards
    assert schedule["counts"] == {"open": 6, "held": 0, "booked": 0, "closed": 0, "extra": 0}
    assert [slot["id"] for slot in schedule["slots"]] == [
        f"{schedule['id']}-{hhmm}" for hhmm in ("0830", "0845", "0900", "0915", "0930", "0945")
    ]
    slots = await _slots(sessions, schedule["id"])
    assert slots[0].starts_at == _at(3, 8, 30) and slots[-1].ends_at == _at(3, 10)
    assert {(slot.fee_fen, slot.disease_code, slot.status) for slot in slots} == {(2000, clinic.disease, "open")}

    public = await api.get(f"/api/v1/doctors/{clinic.attending}/slots", params={"date": day.isoformat()})
    assert [slot["status"] for slot in public.json()] == ["open"] * 6
    assert {slot["schedule_id"] for slot in public.json()} == {schedule["id"]}

    [event] = await audit_events(sessions, schedule["id"])
    assert (event.action, event.actor_user_id) == ("schedule.created", clinic.admin_user)
    assert event.detail["capacity"] == 6


async def test_fee_comes_from_the_doctor_before_the_standard(api, sessions, clinic: Clinic) -> None:
    video = await publish(api, clinic, doctor_id=clinic.chief, service_type="video")
    assert video["fee_fen"] == 9900
    given = await publish(api, clinic, doctor_id=clinic.chief, start="14:00", end="15:00", capacity=4, fee_fen=12345)
    assert given["fee_fen"] == 12345
    phone = await api.post(
        SCHEDULES,
        json=session_body(clinic, doctor_id=clinic.chief, service_type="phone", start="16:00", end="17:30"),
        headers=clinic.headers["admin"],
    )
    assert phone.status_code == 422
    assert phone.json()["code"] == "SERVICE_TYPE_NOT_OFFERED"


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"doctor_id": "doc-missing"}, 422, "UNKNOWN_DOCTOR"),
        ({"disease_code": "DIS-missing"}, 422, "UNKNOWN_DISEASE"),
        ({"disease_code": "other"}, 422, "DISEASE_NOT_IN_DEPARTMENT"),
        ({"slot_minutes": 25}, 422, "WINDOW_MISMATCH"),
        ({"capacity": 7}, 422, "WINDOW_MISMATCH"),
        ({"end": "08:00"}, 422, "WINDOW_MISMATCH"),
        ({"day": "yesterday"}, 422, "PAST_DATE"),
        ({"day": "far"}, 422, "DATE_TOO_FAR"),
        ({"start": "09:00", "end": "11:00"}, 409, "SCHEDULE_OVERLAP"),
        ({}, 409, "SCHEDULE_EXISTS"),
        ({"start": "08:30:15"}, 422, "VALIDATION_FAILED"),
        ({"fee_fen": -1}, 422, "VALIDATION_FAILED"),
        ({"service_type": "门诊"}, 422, "VALIDATION_FAILED"),
    ],
)
async def test_sessions_that_cannot_be_published(api, sessions, clinic: Clinic, changes, status, code) -> None:
    await publish(api, clinic)  # 08:30–10:00 on day 3
    replaced = {"other": clinic.other_disease, "yesterday": in_days(-1).isoformat(), "far": in_days(400).isoformat()}
    body = session_body(clinic, **{key: replaced.get(value, value) for key, value in changes.items()})
    response = await api.post(SCHEDULES, json=body, headers=clinic.headers["admin"])
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["code"] == code
    assert problem["detail"]
    if code != "VALIDATION_FAILED":
        assert problem["violations"][0]["code"] == code
    async with sessions() as session:
        count = select(func.count()).where(col(Schedule.doctor_id) == body["doctor_id"])
        assert (await session.execute(count)).scalar_one() <= 1  # only the first one


async def test_only_admins_manage_schedules(api, clinic: Clinic) -> None:
    for role in ("attending", "patient"):
        response = await api.post(SCHEDULES, json=session_body(clinic), headers=clinic.headers[role])
        assert response.status_code == 403
        assert (await api.get(SCHEDULES, headers=clinic.headers[role])).status_code == 403
    assert (await api.post(SCHEDULES, json=session_body(clinic))).status_code == 401


async def test_capacity_and_window_edits_regenerate_the_slots(api, sessions, clinic: Clinic) -> None:
    schedule = await publish(api, clinic, capacity=4)
    url = f"{SCHEDULES}/{schedule['id']}"
    admin = clinic.headers["admin"]

    grown = await api.patch(url, json={"capacity": 6}, headers=admin)
    assert grown.status_code == 200, grown.text
    assert len(grown.json()["slots"]) == 6
    shrunk = await api.patch(url, json={"capacity": 3}, headers=admin)
    assert [slot["id"][-4:] for slot in shrunk.json()["slots"]] == ["0830", "0845", "0900"]

    moved = await api.patch(
        url, json={"start": "09:00", "end": "10:00", "slot_minutes": 20, "fee_fen": 2500}, headers=admin
    )
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert body["id"] == schedule["id"]  # a schedule keeps its id when moved
    assert body["starts_at"] == _at(3, 9).astimezone(UTC).isoformat().replace("+00:00", "Z")
    slots = await _slots(sessions, schedule["id"])
    assert [(slot.starts_at, slot.ends_at - slot.starts_at, slot.fee_fen) for slot in slots] == [
        (_at(3, 9) + n * timedelta(minutes=20), timedelta(minutes=20), 2500) for n in range(3)
    ]

    events = await audit_events(sessions, schedule["id"])
    assert [event.action for event in events] == ["schedule.created"] + ["schedule.updated"] * 3
    assert events[-1].detail["changes"]["start"] == ["08:30", "09:00"]
    assert events[-1].detail["changes"]["fee_fen"] == [2000, 2500]


async def test_edits_are_refused_once_a_slot_is_held_or_booked(api, sessions, clinic: Clinic) -> None:
    schedule = await publish(api, clinic)
    url = f"{SCHEDULES}/{schedule['id']}"
    admin = clinic.headers["admin"]
    first = schedule["slots"][0]["id"]

    # A hold whose payment window lapsed does not count: the slot is open again.
    await _set_status(sessions, first, "held", datetime.now(UTC) - timedelta(minutes=1))
    assert (await api.patch(url, json={"capacity": 5}, headers=admin)).status_code == 200

    await _set_status(sessions, schedule["slots"][1]["id"], "booked")
    for change in ({"capacity": 6}, {"fee_fen": 9000}, {"start": "08:45"}, {"disease_code": clinic.disease + "x"}):
        refused = await api.patch(url, json=change, headers=admin)
        assert refused.status_code == 409, change
        assert refused.json()["code"] == "SCHEDULE_HAS_BOOKINGS"
        assert "停诊" in refused.json()["detail"]
    assert len(await _slots(sessions, schedule["id"])) == 5

    # What touches no slot may still change.
    allowed = await api.patch(url, json={"note": "请提前准备检查报告", "extra_cap": 3}, headers=admin)
    assert allowed.status_code == 200
    assert (allowed.json()["note"], allowed.json()["extra_cap"]) == ("请提前准备检查报告", 3)
    assert [event.action for event in await audit_events(sessions, schedule["id"])][-1] == "schedule.updated"


async def test_a_removed_slot_an_old_visit_points_at_is_closed_not_deleted(api, sessions, clinic: Clinic) -> None:
    schedule = await publish(api, clinic)
    last = schedule["slots"][-1]
    async with sessions() as session, session.begin():
        session.add(
            Visit(
                id=f"{last['id']}-cancelled",
                patient_id=clinic.patient,
                doctor_id=clinic.attending,
                slot_id=last["id"],
                disease_code=clinic.disease,
                stage="cancelled",
                fee_fen=2000,
                starts_at=datetime.fromisoformat(last["starts_at"]),
            )
        )
    response = await api.patch(f"{SCHEDULES}/{schedule['id']}", json={"capacity": 4}, headers=clinic.headers["admin"])
    assert response.status_code == 200, response.text
    statuses = {slot.id: slot.status for slot in await _slots(sessions, schedule["id"])}
    assert len(statuses) == 5
    assert statuses[last["id"]] == "closed"
    assert response.json()["counts"]["open"] == 4
    # Growing again reopens it.
    regrown = await api.patch(f"{SCHEDULES}/{schedule['id']}", json={"capacity": 6}, headers=clinic.headers["admin"])
    assert regrown.json()["counts"] == {"open": 6, "held": 0, "booked": 0, "closed": 0, "extra": 0}


async def test_edit_refusals(api, sessions, clinic: Clinic) -> None:
    admin = clinic.headers["admin"]
    first = await publish(api, clinic)
    second = await publish(api, clinic, start="14:00", end="15:00", capacity=4)
    url = f"{SCHEDULES}/{second['id']}"
    overlap = await api.patch(url, json={"start": "09:30"}, headers=admin)
    assert (overlap.status_code, overlap.json()["code"]) == (409, "SCHEDULE_OVERLAP")
    too_many = await api.patch(url, json={"capacity": 5}, headers=admin)
    assert (too_many.status_code, too_many.json()["code"]) == (422, "WINDOW_MISMATCH")
    not_allowed = await api.patch(url, json={"day": in_days(5).isoformat()}, headers=admin)
    assert (not_allowed.status_code, not_allowed.json()["code"]) == (422, "VALIDATION_FAILED")
    missing = await api.patch(f"{SCHEDULES}/nope", json={"capacity": 1}, headers=admin)
    assert missing.status_code == 404
    async with sessions() as session, session.begin():
        await session.execute(update(Schedule).where(col(Schedule.id) == first["id"]).values(status="cancelled"))
    cancelled = await api.patch(f"{SCHEDULES}/{first['id']}", json={"capacity": 2}, headers=admin)
    assert (cancelled.status_code, cancelled.json()["code"]) == (409, "SCHEDULE_NOT_PUBLISHED")
    assert [event.action for event in await audit_events(sessions, second["id"])] == ["schedule.created"]


async def test_list_filters_and_detail(api, clinic: Clinic) -> None:
    admin = clinic.headers["admin"]
    early = await publish(api, clinic)
    late = await publish(api, clinic, day=in_days(5).isoformat())
    video = await publish(api, clinic, doctor_id=clinic.chief, service_type="video")

    async def ids(**params) -> list[str]:
        response = await api.get(SCHEDULES, params=params, headers=admin)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    listed = await ids(department_id=clinic.department)
    assert set(listed[:2]) == {early["id"], video["id"]} and listed[2:] == [late["id"]]
    assert await ids(doctor_id=clinic.attending) == [early["id"], late["id"]]
    assert await ids(department_id=clinic.department, date_from=in_days(4).isoformat()) == [late["id"]]
    assert await ids(department_id=clinic.department, date_to=in_days(3).isoformat(), service_type="video") == [
        video["id"]
    ]
    assert await ids(department_id=clinic.department, status="cancelled") == []
    bad = await api.get(SCHEDULES, params={"status": "deleted"}, headers=admin)
    assert bad.status_code == 422
    detail = (await api.get(f"{SCHEDULES}/{video['id']}", headers=admin)).json()
    assert (detail["doctor_name"], detail["fee_fen"], len(detail["slots"])) == ("李明远", 9900, 6)


async def test_doctor_adds_an_extra_slot_after_the_last_one(api, sessions, clinic: Clinic) -> None:
    schedule = await publish(api, clinic)
    response = await api.post(
        f"/api/v1/schedules/{schedule['id']}/extra-slots",
        json={"reason": "复诊患者较多，临时加号"},
        headers=clinic.headers["attending"],
    )
    assert response.status_code == 201, response.text
    slot = response.json()
    assert slot["id"] == f"{schedule['id']}-x01"
    assert slot["starts_at"] == _at(3, 10).astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert (slot["is_extra"], slot["reserved_for"], slot["fee_fen"]) == (True, None, 2000)
    assert (slot["added_by"], slot["added_reason"]) == (clinic.attending_user, "复诊患者较多，临时加号")

    public = await api.get(f"/api/v1/doctors/{clinic.attending}/slots", params={"date": in_days(3).isoformat()})
    extra = public.json()[-1]
    assert (extra["id"], extra["is_extra"], extra["reserved"], extra["status"]) == (slot["id"], True, False, "open")
    [event] = await audit_events(sessions, slot["id"])
    assert (event.action, event.actor_user_id, event.reason) == (
        "slot.extra_added",
        clinic.attending_user,
        slot["added_reason"],
    )

    second = await api.post(
        f"/api/v1/schedules/{schedule['id']}/extra-slots", json={"reason": "再加一号"}, headers=clinic.headers["admin"]
    )
    assert second.json()["starts_at"] == _at(3, 10, 15).astimezone(UTC).isoformat().replace("+00:00", "Z")
    capped = await api.post(
        f"/api/v1/schedules/{schedule['id']}/extra-slots", json={"reason": "第三个"}, headers=clinic.headers["admin"]
    )
    assert capped.status_code == 409
    assert (capped.json()["code"], capped.json()["extra_cap"], capped.json()["used"]) == (
        "EXTRA_SLOT_CAP_REACHED",
        2,
        2,
    )
    lowered = await api.patch(f"{SCHEDULES}/{schedule['id']}", json={"extra_cap": 1}, headers=clinic.headers["admin"])
    assert (lowered.status_code, lowered.json()["code"]) == (409, "EXTRA_CAP_BELOW_USED")


async def test_an_extra_slot_for_a_named_patient(api, sessions, clinic: Clinic) -> None:
    schedule = await publish(api, clinic, extra_cap=1)
    for slot in schedule["slots"]:
        await _set_status(sessions, slot["id"], "booked")
    response = await api.post(
        f"/api/v1/schedules/{schedule['id']}/extra-slots",
        json={"reason": "老患者复诊需要", "patient_id": clinic.patient, "starts_at": _at(3, 11, 30).isoformat()},
        headers=clinic.headers["attending"],
    )
    assert response.status_code == 201, response.text
    slot = response.json()
    assert slot["reserved_for"] == clinic.patient
    assert slot["starts_at"] == _at(3, 11, 30).astimezone(UTC).isoformat().replace("+00:00", "Z")

    # Nobody else can book it: the public sees it as unavailable, and the doctor counts as fully booked.
    public = await api.get(f"/api/v1/doctors/{clinic.attending}/slots", params={"date": in_days(3).isoformat()})
    reserved = next(item for item in public.json() if item["id"] == slot["id"])
    assert (reserved["status"], reserved["reserved"], reserved["is_extra"]) == ("unavailable", True, True)
    assert "reserved_for" not in reserved
    available = await api.get(
        "/api/v1/doctors",
        params={"department_id": clinic.department, "date": in_days(3).isoformat(), "available": "true"},
    )
    assert clinic.attending not in [doctor["id"] for doctor in available.json()["items"]]

    async with sessions() as session:
        notices = list(
            (
                await session.execute(select(Notification).where(col(Notification.user_id) == clinic.patient_user))
            ).scalars()
        )
    [notice] = notices
    assert (notice.template, notice.key, notice.title) == ("extra_slot", f"extra-slot:{slot['id']}", "医生为您加号")
    assert "王清和主治医师" in notice.body and "11:30" in notice.body
    assert notice.params["slot_id"] == slot["id"]
    [event] = await audit_events(sessions, slot["id"])
    assert event.detail["reserved_for"] == clinic.patient


async def test_extra_slot_refusals(api, sessions, clinic: Clinic) -> None:
    schedule = await publish(api, clinic)
    url = f"/api/v1/schedules/{schedule['id']}/extra-slots"
    own = clinic.headers["attending"]
    cases = [
        (clinic.headers["chief"], {"reason": "x"}, 403, "FORBIDDEN"),
        (clinic.headers["patient"], {"reason": "x"}, 403, "FORBIDDEN"),
        (own, {}, 422, "VALIDATION_FAILED"),
        (own, {"reason": ""}, 422, "VALIDATION_FAILED"),
        (own, {"reason": "x", "patient_id": "pat-missing"}, 404, "NOT_FOUND"),
        (
            own,
            {"reason": "x", "starts_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
            422,
            "EXTRA_SLOT_IN_PAST",
        ),
        (own, {"reason": "x", "starts_at": _at(4, 9).isoformat()}, 422, "EXTRA_SLOT_OUTSIDE_DAY"),
        (own, {"reason": "x", "starts_at": "2030-01-01T09:00:00"}, 422, "VALIDATION_FAILED"),
    ]
    for headers, body, status, code in cases:
        response = await api.post(url, json=body, headers=headers)
        assert (response.status_code, response.json()["code"]) == (status, code), (body, response.text)
    missing = await api.post("/api/v1/schedules/nope/extra-slots", json={"reason": "x"}, headers=own)
    assert missing.status_code == 404
    assert [slot for slot in await _slots(sessions, schedule["id"]) if slot.is_extra] == []


async def test_the_extra_slot_cap_holds_under_concurrent_requests(api, sessions, clinic: Clinic) -> None:
    schedule = await publish(api, clinic, extra_cap=5)
    url = f"/api/v1/schedules/{schedule['id']}/extra-slots"
    headers = [clinic.headers["attending"], clinic.headers["admin"]]
    responses = await asyncio.gather(
        *(api.post(url, json={"reason": f"加号 {n}"}, headers=headers[n % 2]) for n in range(20))
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * 5 + [409] * 15
    assert {response.json()["code"] for response in responses if response.status_code == 409} == {
        "EXTRA_SLOT_CAP_REACHED"
    }
    extras = [slot for slot in await _slots(sessions, schedule["id"]) if slot.is_extra]
    assert sorted(slot.id for slot in extras) == [f"{schedule['id']}-x0{n}" for n in range(1, 6)]
    # Default times follow one another: each request saw the slots the one before it added.
    assert len({slot.starts_at for slot in extras}) == 5


async def test_creating_is_idempotent_with_a_key(api, sessions, clinic: Clinic) -> None:
    headers = {**clinic.headers["admin"], "Idempotency-Key": f"create-{clinic.attending}"}
    first = await api.post(SCHEDULES, json=session_body(clinic), headers=headers)
    again = await api.post(SCHEDULES, json=session_body(clinic), headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert len(await audit_events(sessions, first.json()["id"])) == 1

"""The no-show blacklist (8.6.8): N no-shows within M days block booking for D days; admins lift a block after an
appeal; every change is audited. Settings are the defaults: 3 no-shows within 90 days block booking for 30 days."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import col

from api.hospital_time import SHANGHAI
from models.common import Role
from models.tables import AuditEvent, BookingBlock, NoShow, Visit
from tests.api.helpers import login, make_user, unique
from tests.api.test_booking import Clinic, assert_problem, bearer, book
from tests.api.test_booking import clinic as clinic  # the fixture

LIMIT, BLOCK_DAYS = 3, 30


async def no_shows(clinic: Clinic, patient_id: str, *days_ago: float) -> list[datetime]:
    """A visit the patient missed, recorded `days_ago` each; returns when each was recorded."""
    now = datetime.now(UTC)
    recorded = [now - timedelta(days=days) for days in days_ago]
    for moment in recorded:
        slot_id = await clinic.slot(hours=-24 * 400)
        visit_id = unique("visit")
        async with clinic.sessions() as session, session.begin():
            session.add(
                Visit(
                    id=visit_id,
                    patient_id=patient_id,
                    doctor_id=clinic.doctor_id,
                    slot_id=slot_id,
                    disease_code=clinic.disease_code,
                    stage="waiting_doctor",
                    fee_fen=5000,
                    starts_at=moment - timedelta(minutes=30),
                )
            )
            await session.flush()
            session.add(
                NoShow(
                    visit_id=visit_id,
                    patient_id=patient_id,
                    doctor_id=clinic.doctor_id,
                    slot_starts_at=moment - timedelta(minutes=30),
                    recorded_at=moment,
                )
            )
    return recorded


async def blocks_of(clinic: Clinic, patient_id: str) -> list[BookingBlock]:
    async with clinic.sessions() as session:
        rows = await session.execute(
            select(BookingBlock).where(col(BookingBlock.patient_id) == patient_id).order_by(col(BookingBlock.id))
        )
        return list(rows.scalars())


async def audits(clinic: Clinic, action: str, subject_id: str) -> list[AuditEvent]:
    async with clinic.sessions() as session:
        rows = await session.execute(
            select(AuditEvent).where(col(AuditEvent.action) == action, col(AuditEvent.subject_id) == subject_id)
        )
        return list(rows.scalars())


@pytest.fixture
async def admin(api, sessions) -> tuple[str, dict[str, str]]:
    user_id, _ = await make_user(sessions, Role.ADMIN)
    return user_id, await login(api, user_id)


async def test_the_limit_th_no_show_blocks_booking_until_the_rule_says(api, clinic) -> None:
    patient = await clinic.patient()
    taken = await clinic.taken_slot()
    await no_shows(clinic, patient.patient_id, 20, 10)
    # Two no-shows: still allowed (the slot is taken, so the answer is the race's, not a block).
    assert_problem(await book(api, patient, taken), 409, "SLOT_TAKEN")
    (third,) = await no_shows(clinic, patient.patient_id, 2)
    body = assert_problem(await book(api, patient, taken), 403, "BOOKING_BLOCKED")
    until = third + timedelta(days=BLOCK_DAYS)
    assert datetime.fromisoformat(body["blocked_until"]) == until
    assert f"{until.astimezone(SHANGHAI):%Y年%m月%d日 %H:%M}（北京时间）" in body["detail"]
    (block,) = await blocks_of(clinic, patient.patient_id)
    assert block.blocked_from == third and block.lifted_at is None
    assert block.rule["no_show_limit"] == LIMIT and len(block.rule["visit_ids"]) == LIMIT
    created = await audits(clinic, "booking_block.create", str(block.id))
    assert len(created) == 1 and created[0].detail["patient_id"] == patient.patient_id
    # The patient sees the same, and asking again (even many times at once) records nothing new.
    slots = [await clinic.slot() for _ in range(8)]
    answers = await asyncio.gather(*(book(api, patient, slot_id) for slot_id in slots))
    assert {answer.json()["code"] for answer in answers} == {"BOOKING_BLOCKED"}
    mine = (await api.get("/api/v1/me/booking-block", headers=bearer(patient))).json()
    assert mine["blocked"] is True and datetime.fromisoformat(mine["blocked_until"]) == until
    assert len(await blocks_of(clinic, patient.patient_id)) == 1


async def test_concurrent_first_attempts_record_one_block(api, clinic) -> None:
    patient = await clinic.patient()
    await no_shows(clinic, patient.patient_id, 5, 4, 3)
    slots = [await clinic.slot() for _ in range(10)]
    answers = await asyncio.gather(*(book(api, patient, slot_id) for slot_id in slots))
    assert {answer.status_code for answer in answers} == {403}
    assert len(await blocks_of(clinic, patient.patient_id)) == 1


async def test_old_no_shows_do_not_count(api, clinic) -> None:
    patient = await clinic.patient()
    await no_shows(clinic, patient.patient_id, 200, 150, 95, 5)
    assert_problem(await book(api, patient, await clinic.taken_slot()), 409, "SLOT_TAKEN")
    assert await blocks_of(clinic, patient.patient_id) == []


async def test_a_block_whose_time_ran_out_is_recorded_and_does_not_stop_booking(api, clinic) -> None:
    patient = await clinic.patient()
    recorded = await no_shows(clinic, patient.patient_id, 60, 50, 40)
    assert_problem(await book(api, patient, await clinic.taken_slot()), 409, "SLOT_TAKEN")
    (block,) = await blocks_of(clinic, patient.patient_id)
    assert block.blocked_from == recorded[-1] and block.blocked_until < datetime.now(UTC)
    # Those no-shows are used up: the next one alone does not block again.
    await no_shows(clinic, patient.patient_id, 1)
    assert_problem(await book(api, patient, await clinic.taken_slot()), 409, "SLOT_TAKEN")
    assert len(await blocks_of(clinic, patient.patient_id)) == 1


async def test_admin_lifts_a_block_with_a_reason_and_it_is_audited(api, clinic, admin) -> None:
    admin_id, admin_headers = admin
    patient = await clinic.patient()
    await no_shows(clinic, patient.patient_id, 3, 2, 1)
    assert_problem(await book(api, patient, await clinic.slot()), 403, "BOOKING_BLOCKED")

    listed = await api.get(
        "/api/v1/admin/booking-blocks",
        params={"patient_id": patient.patient_id, "active": "true"},
        headers=admin_headers,
    )
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["total"] == 1 and page["items"][0]["active"] is True
    block_id = page["items"][0]["id"]

    assert_problem(
        await api.post(f"/api/v1/admin/booking-blocks/{block_id}/lift", json={}, headers=admin_headers),
        422,
        "VALIDATION_FAILED",
    )
    assert_problem(
        await api.post(
            f"/api/v1/admin/booking-blocks/{block_id}/lift", json={"reason": "申诉"}, headers=bearer(patient)
        ),
        403,
        "FORBIDDEN",
    )
    reason = "患者申诉：就诊当日网络故障，经核实予以解除"
    lifted = await api.post(
        f"/api/v1/admin/booking-blocks/{block_id}/lift", json={"reason": reason}, headers=admin_headers
    )
    assert lifted.status_code == 200, lifted.text
    out = lifted.json()
    assert out["active"] is False and out["lifted_by"] == admin_id and out["lift_reason"] == reason
    (event,) = await audits(clinic, "booking_block.lift", str(block_id))
    assert event.actor_user_id == admin_id and event.reason == reason

    # Booking works again, and the same old no-shows do not block again.
    assert_problem(await book(api, patient, await clinic.taken_slot()), 409, "SLOT_TAKEN")
    mine = (await api.get("/api/v1/me/booking-block", headers=bearer(patient))).json()
    assert mine == {"blocked": False, "blocked_until": None, "reason": None, "message": "您可以正常预约挂号。"}
    assert len(await blocks_of(clinic, patient.patient_id)) == 1
    assert_problem(
        await api.post(f"/api/v1/admin/booking-blocks/{block_id}/lift", json={"reason": reason}, headers=admin_headers),
        409,
        "BOOKING_BLOCK_NOT_ACTIVE",
    )
    assert_problem(
        await api.post("/api/v1/admin/booking-blocks/2147483647/lift", json={"reason": reason}, headers=admin_headers),
        404,
        "NOT_FOUND",
    )
    inactive = (
        await api.get(
            "/api/v1/admin/booking-blocks",
            params={"patient_id": patient.patient_id, "active": "false"},
            headers=admin_headers,
        )
    ).json()
    assert [item["id"] for item in inactive["items"]] == [block_id]

    # New no-shows after the lift count again.
    await no_shows(clinic, patient.patient_id, 0, 0, 0)
    assert_problem(await book(api, patient, await clinic.slot()), 403, "BOOKING_BLOCKED")
    assert len(await blocks_of(clinic, patient.patient_id)) == 2


async def test_patients_see_only_their_own_standing(api, clinic) -> None:
    patient = await clinic.patient()
    answer = await api.get("/api/v1/me/booking-block", headers=bearer(patient))
    assert answer.status_code == 200 and answer.json()["blocked"] is False
    assert_problem(await api.get("/api/v1/admin/booking-blocks", headers=bearer(patient)), 403, "FORBIDDEN")

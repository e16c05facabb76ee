"""A doctor's leave (停诊) over the HTTP API: several patients booked on one session, the leave reaches every one of
them with a notice and an offer, and each ends refunded or rebooked; the unpaid booking is cancelled."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from activities.adapters.his.sandbox import SandboxHis
from core.settings import Settings
from models import idcard
from models.common import Role
from models.tables import Notification, Schedule, Slot
from tests.api.helpers import make_user
from workers.journey import Journey, JourneyError
from workers.seed import DEMO_PASSWORD, SHANGHAI

DISEASE = "TCM-PW-001"  # 胃痞病, department dept-pw
ON_LEAVE = "doc-1"  # 主任医师
OTHER = "doc-2"  # same department
# One per patient `ready_patient` makes, so each has a distinct, well-formed Chinese name.
NAME_CHARS = "甲乙丙丁戊己庚辛壬癸"
# Long enough for two patients to choose over HTTP, short enough to wait out for the third.
CHOICE_WINDOW_S = 8


@dataclass
class Booked:
    journey: Journey
    user_id: str
    visit_id: str
    bill_id: str


async def make_session(
    sessions: async_sessionmaker[AsyncSession], doctor_id: str, starts_at: datetime, slots: int, fee_fen: int
) -> tuple[str, list[str]]:
    """A schedule of our own with its slots, so the test does not depend on what the seed publishes."""
    schedule_id = f"sch-e2e-{uuid.uuid4().hex[:10]}"
    length = timedelta(minutes=15)
    async with sessions() as session, session.begin():
        session.add(
            Schedule(
                id=schedule_id,
                doctor_id=doctor_id,
                day=starts_at.astimezone(SHANGHAI).date(),
                starts_at=starts_at,
                ends_at=starts_at + slots * length,
                slot_minutes=15,
                capacity=slots,
                fee_fen=fee_fen,
                disease_code=DISEASE,
            )
        )
        await session.flush()
        slot_ids = [f"{schedule_id}-{n}" for n in range(slots)]
        for n, slot_id in enumerate(slot_ids):
            session.add(
                Slot(
                    id=slot_id,
                    schedule_id=schedule_id,
                    doctor_id=doctor_id,
                    starts_at=starts_at + n * length,
                    ends_at=starts_at + (n + 1) * length,
                    fee_fen=fee_fen,
                    disease_code=DISEASE,
                )
            )
    return schedule_id, slot_ids


async def ready_patient(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, journey: Journey, number: int
) -> str:
    """A new patient account, known to the sandbox HIS, through real-name and the revisit check over HTTP."""
    tag = uuid.uuid4().hex[:8]
    journey.patient = f"leave-{tag}"
    user_id, _ = await make_user(
        sessions, Role.PATIENT, username=journey.patient, password=DEMO_PASSWORD, display_name=f"停诊患者{number}"
    )
    identity = {
        "name": f"停诊{NAME_CHARS[number]}",
        "id_card_no": idcard.make(
            region="110105", born=datetime(1960, 1, 1).date() + timedelta(days=int(tag, 16) % 9000)
        ),
        "phone": f"136{int(tag, 16) % 10**8:08d}",
    }
    await SandboxHis(sessions, settings).add_diagnosis(
        id_card_no=identity["id_card_no"],
        disease_code=DISEASE,
        disease_name="胃痞病",
        diagnosed_at=datetime.now(UTC) - timedelta(days=30),
        encounter_id=f"leave-{tag}",
    )
    await journey.register_patient(identity, DISEASE)
    return user_id


async def templates(sessions: async_sessionmaker[AsyncSession], user_id: str) -> list[str]:
    async with sessions() as session:
        return list(
            (await session.execute(select(Notification.template).where(col(Notification.user_id) == user_id))).scalars()
        )


async def test_leave_reaches_every_booked_patient_who_ends_refunded_or_rebooked(make_stack) -> None:
    stack = await make_stack(leave_choice_window_s=CHOICE_WINDOW_S)
    sessions = stack.sessions
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    schedule_id, slots = await make_session(sessions, ON_LEAVE, tomorrow, slots=4, fee_fen=5000)
    _, cheaper = await make_session(sessions, OTHER, tomorrow + timedelta(hours=3), slots=1, fee_fen=2000)
    _, dearer = await make_session(sessions, OTHER, tomorrow + timedelta(hours=5), slots=1, fee_fen=8000)

    booked: list[Booked] = []
    for number in range(4):
        journey = Journey(stack.http)
        user_id = await ready_patient(sessions, stack.settings, journey, number)
        visit = await journey.book(slots[number])
        if number < 3:  # the fourth leaves the bill open
            await journey.pay(visit["bill_id"], "挂号费")
            await journey.visit_stage(visit["visit_id"], "waiting_doctor", journey.patient)
        booked.append(Booked(journey, user_id, visit["visit_id"], visit["bill_id"]))
    refund_choice, rebook_choice, silent, unpaid = booked
    admin = refund_choice.journey.admin

    # Only the admin or the schedule's own doctor may ask; the answer comes once the change is recorded.
    stranger = await stack.http.post(
        f"/api/v1/schedules/{schedule_id}/changes",
        headers=await refund_choice.journey.login("demo-doctor2"),
        json={"kind": "leave", "reason": "临时外出会诊"},
    )
    assert stranger.status_code == 403, stranger.text
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"kind": "leave", "reason": "临时外出参加省级会诊"}
    change = await refund_choice.journey.call(
        "POST", f"/schedules/{schedule_id}/changes", admin, expected=201, json=body, headers=key
    )
    again = await refund_choice.journey.call(
        "POST", f"/schedules/{schedule_id}/changes", admin, expected=201, json=body, headers=key
    )
    assert again["change_id"] == change["change_id"]
    assert sorted(v["visit_id"] for v in change["visits"]) == sorted(b.visit_id for b in booked)
    twice = await stack.http.post(
        f"/api/v1/schedules/{schedule_id}/changes",
        headers=await refund_choice.journey.login(admin),
        json={"kind": "leave", "reason": "重复提交"},
    )
    assert twice.status_code == 409 and twice.json()["code"] == "SCHEDULE_ALREADY_CHANGED"

    # Every paid patient sees the offer on the visit; the unpaid booking is cancelled and its bill closed.
    for patient in (refund_choice, rebook_choice, silent):
        offered = await patient.journey.until(
            "停诊改约/退款选择",
            lambda p=patient: p.journey.call("GET", f"/visits/{p.visit_id}", p.journey.patient),
            lambda v: v["leave_offer"] is not None,
        )
        assert offered["leave_offer"]["refund_fen"] == 5000 and offered["leave_offer"]["disease_code"] == DISEASE
    await unpaid.journey.visit_stage(unpaid.visit_id, "cancelled", unpaid.journey.patient)
    closed = await unpaid.journey.call("GET", f"/bills/{unpaid.bill_id}", unpaid.journey.patient)
    assert closed["status"] == "closed"

    # A full refund by choice.
    ended = await refund_choice.journey.call(
        "POST", f"/visits/{refund_choice.visit_id}/leave-choice", refund_choice.journey.patient,
        json={"choice": "refund"},
    )  # fmt: skip
    assert ended["stage"] == "cancelled" and ended["refunded_fen"] == 5000

    # Rebooking: a dearer slot is refused with a clear answer; a cheaper one refunds the difference.
    try:
        await rebook_choice.journey.call(
            "POST", f"/visits/{rebook_choice.visit_id}/leave-choice", rebook_choice.journey.patient,
            json={"choice": "rebook", "slot_id": dearer[0]},
        )  # fmt: skip
        raise AssertionError("a dearer slot was accepted")
    except JourneyError as refused:
        assert "409" in str(refused) and "REBOOK_FEE_HIGHER" in str(refused)
    moved = await rebook_choice.journey.call(
        "POST", f"/visits/{rebook_choice.visit_id}/leave-choice", rebook_choice.journey.patient,
        json={"choice": "rebook", "slot_id": cheaper[0]}, headers={"Idempotency-Key": str(uuid.uuid4())},
    )  # fmt: skip
    assert (moved["slot_id"], moved["doctor_id"], moved["fee_fen"]) == (cheaper[0], OTHER, 2000)
    assert moved["stage"] == "waiting_doctor" and moved["leave_offer"] is None
    early = await stack.http.post(
        f"/api/v1/visits/{rebook_choice.visit_id}/check-in",
        headers=await rebook_choice.journey.login(rebook_choice.journey.patient),
    )
    assert early.status_code == 409 and early.json()["code"] == "CHECK_IN_NOT_OPEN"

    # The patient who does not choose is refunded in full once the window passes.
    await silent.journey.visit_stage(silent.visit_id, "cancelled", silent.journey.patient)

    progress = await refund_choice.journey.until(
        "停诊处理完成",
        lambda: refund_choice.journey.call("GET", f"/schedule-changes/{change['change_id']}", admin),
        lambda c: c["status"] == "done",
    )
    outcomes = {v["visit_id"]: v["outcome"] for v in progress["visits"]}
    assert outcomes == {
        refund_choice.visit_id: "refunded",
        rebook_choice.visit_id: "rebooked",
        silent.visit_id: "refunded",
        unpaid.visit_id: "cancelled",
    }
    for patient, refunded in ((refund_choice, 5000), (rebook_choice, 3000), (silent, 5000)):
        bill = await patient.journey.until(
            "挂号费退款",
            lambda p=patient: p.journey.call("GET", f"/bills/{p.bill_id}", p.journey.patient),
            lambda b, r=refunded: b["refunded_fen"] == r,
        )
        assert bill["status"] == "paid"

    # Every booked patient was told, and every slot of the cancelled session is closed.
    for patient in (refund_choice, rebook_choice, silent):
        assert "visit_leave_offer" in await templates(sessions, patient.user_id)
    assert "visit_rebooked" in await templates(sessions, rebook_choice.user_id)
    assert "visit_cancelled" in await templates(sessions, unpaid.user_id)
    async with sessions() as session:
        schedule = await session.get(Schedule, schedule_id)
        statuses = (await session.execute(select(Slot.status).where(col(Slot.schedule_id) == schedule_id))).scalars()
        assert schedule is not None and schedule.status == "cancelled"
        assert set(statuses) == {"closed"}

    listed = await refund_choice.journey.call("GET", "/schedule-changes", admin, params={"schedule_id": schedule_id})
    assert [(c["change_id"], c["affected_visits"], c["status"]) for c in listed["items"]] == [
        (change["change_id"], 4, "done")
    ]


async def test_substitution_by_the_doctor_hands_the_booking_to_a_colleague(make_stack) -> None:
    stack = await make_stack()
    sessions = stack.sessions
    # Late evening in a week: clear of the demo sessions, so the substitute is free then.
    local_day = (datetime.now(SHANGHAI) + timedelta(days=6)).date()
    starts = datetime(local_day.year, local_day.month, local_day.day, 21, tzinfo=SHANGHAI).astimezone(UTC)
    schedule_id, slots = await make_session(sessions, ON_LEAVE, starts, slots=2, fee_fen=5000)
    journey = Journey(stack.http, doctor="demo-doctor")
    user_id = await ready_patient(sessions, stack.settings, journey, 0)
    visit = await journey.book(slots[0])
    await journey.pay(visit["bill_id"], "挂号费")
    await journey.visit_stage(visit["visit_id"], "waiting_doctor", journey.patient)

    path = f"/api/v1/schedules/{schedule_id}/changes"
    headers = await journey.login(journey.doctor)
    missing = await stack.http.post(path, headers=headers, json={"kind": "substitution", "reason": "临时调班"})
    assert missing.status_code == 422 and missing.json()["code"] == "VALIDATION_FAILED"
    elsewhere = await stack.http.post(
        path, headers=headers, json={"kind": "substitution", "substitute_doctor_id": "doc-3", "reason": "临时调班"}
    )
    assert elsewhere.status_code == 409 and elsewhere.json()["code"] == "SUBSTITUTE_NOT_ELIGIBLE"
    change = await journey.call(
        "POST", f"/schedules/{schedule_id}/changes", journey.doctor, expected=201,
        json={"kind": "substitution", "substitute_doctor_id": OTHER, "reason": "临时调班"},
    )  # fmt: skip
    progress = await journey.until(
        "替诊完成",
        lambda: journey.call("GET", f"/schedule-changes/{change['change_id']}", journey.doctor),
        lambda c: c["status"] == "done",
    )
    assert [v["outcome"] for v in progress["visits"]] == ["substituted"]

    now = await journey.call("GET", f"/visits/{visit['visit_id']}", journey.patient)
    assert now["doctor_id"] == OTHER and now["stage"] == "waiting_doctor"
    waiting = await journey.call("GET", "/visits", "demo-doctor2", params={"stage": "waiting_doctor"})
    assert visit["visit_id"] in {v["visit_id"] for v in waiting}
    accepted = await journey.call("POST", f"/visits/{visit['visit_id']}/accept", "demo-doctor2")
    assert accepted["stage"] == "in_consult"
    assert "visit_substituted" in await templates(sessions, user_id)
    async with sessions() as session:
        free = await session.get(Slot, slots[1])
        assert free is not None and free.doctor_id == OTHER and free.status == "open"

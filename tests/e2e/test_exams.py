"""Exams over the HTTP API against the whole stack (sandbox channel): the doctor orders a 舌象仪检测 and a 血常规 in the
consult, the patient pays the order's own bill, books a day for the exam that needs one, the 血常规 is performed, the
patient cancels the booked exam and gets its price back along the original path (once), and the performed one is
refused a refund."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from models.common import HOSPITAL_TZ
from models.tables import Refund, SandboxRefund
from workers.journey import Journey
from workers.seed import DEMO_HIS_DIAGNOSES, DEMO_IDENTITIES

EXAMS = ["TCM-TONGUE", "LAB-CBC"]  # 30.00 元, booked per day; 18.00 元, no booking


class ExamJourney(Journey):
    """The demo journey, the doctor also ordering exams while in the consult."""

    order: dict[str, Any]

    async def chat(self, visit_id: str) -> None:
        await super().chat(visit_id)
        # Another doctor's order for this visit is refused as if the visit did not exist.
        stranger = await self.http.post(
            f"/api/v1/visits/{visit_id}/exams", json={"exam_codes": EXAMS}, headers=await self.login("demo-doctor2")
        )
        assert stranger.status_code == 404, stranger.text
        self.order = await self.call(
            "POST", f"/visits/{visit_id}/exams", self.doctor, expected=201,
            json={"exam_codes": EXAMS, "note": "观察舌象，排除贫血"}, headers={"Idempotency-Key": str(uuid.uuid4())},
        )  # fmt: skip
        self.log(self.doctor, "开具检查", "、".join(i["name"] for i in self.order["items"]))


async def test_exams_ordered_paid_booked_cancelled_refunded_and_refused_once_performed(make_stack) -> None:
    stack = await make_stack()
    _, disease, doctor_id = DEMO_HIS_DIAGNOSES["demo-patient"]
    journey = ExamJourney(stack.http)
    await journey.register_patient(DEMO_IDENTITIES["demo-patient"], disease)
    visit = await journey.book(await journey.free_slot(doctor_id, disease))
    await journey.pay(visit["bill_id"], "挂号费")
    await journey.visit_stage(visit["visit_id"], "waiting_doctor", journey.patient)
    await journey.consult(visit["visit_id"])
    order_id = journey.order["order_id"]
    base = f"/exams/{order_id}"

    # The patient sees the order (another patient does not), pays its own bill through the channel.
    listed = await journey.call("GET", "/exams", journey.patient)
    assert order_id in {o["order_id"] for o in listed}
    other = Journey(stack.http, patient="demo-patient2")
    assert order_id not in {o["order_id"] for o in await other.call("GET", "/exams", other.patient)}
    await other.call("GET", base, other.patient, expected=404)
    opened = await journey.call("POST", f"{base}/payment", journey.patient, headers={"Idempotency-Key": "pay-1"})
    bill_id = opened["bill_id"]
    assert opened["total_fen"] == 4800 and opened["pay_url"]
    await journey.pay(bill_id, "检查费")
    bill = await journey.call("GET", f"/bills/{bill_id}", journey.patient)
    assert (bill["kind"], bill["amount_fen"], bill["ref_id"]) == ("exam", 4800, order_id)
    await journey.until(
        "检查单已缴费", lambda: journey.call("GET", base, journey.patient), lambda o: o["stage"] == "paid"
    )

    # A day for the 舌象仪检测; the 血常规 needs none.
    day = (datetime.now(UTC).astimezone(HOSPITAL_TZ) + timedelta(days=1)).date().isoformat()
    places = f"/exam-catalogue/TCM-TONGUE/availability?start={day}&days=1"
    [free_before] = await journey.call("GET", places, journey.patient)
    booked = await journey.call("POST", f"{base}/items/1/booking", journey.patient, json={"day": day})
    assert booked["items"][0]["status"] == "booked" and booked["items"][0]["booked_day"] == day
    [free_after] = await journey.call("GET", places, journey.patient)
    assert free_after["remaining"] == free_before["remaining"] - 1
    no_booking = await journey.http.post(
        f"/api/v1{base}/items/2/booking", json={"day": day}, headers=await journey.login(journey.patient)
    )
    assert no_booking.status_code == 409 and no_booking.json()["code"] == "EXAM_NO_BOOKING"

    # The lab performs the 血常规.
    performed = await journey.call("POST", f"{base}/items/2/performed", journey.admin)
    assert performed["items"][1]["status"] == "performed"

    # The patient cancels the booked exam: 30.00 元 back along the channel, its day free again.
    cancelled = await journey.call(
        "POST", f"{base}/cancel", journey.patient, json={"reason": "症状缓解，暂不检查", "item_nos": [1]},
        headers={"Idempotency-Key": "cancel-1"},
    )  # fmt: skip
    assert cancelled["items"][0]["status"] == "cancelled" and cancelled["refunded_fen"] == 3000
    refunds = await journey.until(
        "检查费退款",
        lambda: journey.call("GET", f"/bills/{bill_id}/refunds", journey.patient),
        lambda rows: [r["status"] for r in rows] == ["succeeded"],
    )
    assert (refunds[0]["channel_fen"], refunds[0]["kind"], refunds[0]["reason_code"]) == (
        3000,
        "ordinary",
        "patient_cancelled_exam",
    )
    bill = await journey.call("GET", f"/bills/{bill_id}", journey.patient)
    assert bill["refunded_fen"] == 3000 and bill["status"] == "paid"
    [free_again] = await journey.call("GET", places, journey.patient)
    assert free_again["remaining"] == free_before["remaining"]

    # Performed: no refund, whether the order is still open or has ended; nothing was refunded twice.
    refused = await journey.http.post(
        f"/api/v1{base}/cancel",
        json={"reason": "不想做了", "item_nos": [2]},
        headers=await journey.login(journey.patient),
    )
    assert refused.status_code == 409 and refused.json()["code"] == "EXAM_PERFORMED", refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    done = await journey.until(
        "检查单完成", lambda: journey.call("GET", base, journey.patient), lambda o: o["stage"] == "completed"
    )
    assert [i["status"] for i in done["items"]] == ["cancelled", "performed"]
    again = await journey.http.post(
        f"/api/v1{base}/cancel", json={"reason": "x"}, headers=await journey.login(journey.patient)
    )
    assert again.status_code == 409 and again.json()["code"] == "EXAM_PERFORMED"
    async with stack.sessions() as session:
        channel = (
            (await session.execute(select(SandboxRefund).where(col(SandboxRefund.out_trade_no) == bill_id)))
            .scalars()
            .all()
        )
        rows = (await session.execute(select(Refund).where(col(Refund.bill_id) == bill_id))).scalars().all()
    assert [r.amount_fen for r in channel] == [3000] and len(rows) == 1

    # The patient was told at each step (notices go out beside the flows).
    await journey.until(
        "检查通知",
        lambda: journey.call("GET", "/me/notifications", journey.patient, params={"limit": 50}),
        lambda inbox: (
            {"exam_ordered", "exam_paid", "exam_booked", "refund_done"} <= {n["template"] for n in inbox["items"]}
        ),
    )

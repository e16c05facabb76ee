"""Money over the HTTP API against the whole stack (sandbox channel, 医保 platform and e-invoice platform): the 医保
split at payment and its refund (the path `make demo` shows), an administrator's authorized refund, a patient's
refund request before the medicine leaves, and a special refund negotiated after it left."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlmodel import col

from activities.adapters.payment.sandbox import SandboxPayment
from models.tables import AuditEvent, Bill, InsuranceSettlement, Refund, SandboxCall, SandboxPayOrder, SandboxRefund
from tests.api.consult_helpers import make_consult_visit
from workers.journey import DEMO_EC_TOKEN, Journey
from workers.seed import DEMO_HIS_DIAGNOSES, DEMO_IDENTITIES


async def test_insured_registration_is_split_paid_invoiced_and_refunded_along_both_paths(make_stack) -> None:
    stack = await make_stack()
    _, disease, doctor_id = DEMO_HIS_DIAGNOSES["demo-patient2"]
    journey = Journey(stack.http, patient="demo-patient2", doctor=f"demo-doctor{doctor_id.removeprefix('doc-')}")
    await journey.register_patient(DEMO_IDENTITIES["demo-patient2"], disease)
    bill = await journey.insured_visit_refunded(doctor_id, disease)

    bill_id = bill["bill_id"]
    part = bill["insurance"]
    assert bill["total_fen"] == bill["amount_fen"] + bill["insurance_fen"]
    assert bill["insurance_fen"] == part["fund_fen"] + part["account_fen"] > 0
    assert bill["amount_fen"] == part["cash_fen"] > 0 and part["status"] == "cancelled"
    async with stack.sessions() as session:
        order = await session.get(SandboxPayOrder, bill_id)
        channel_refunds = (
            (await session.execute(select(SandboxRefund).where(col(SandboxRefund.out_trade_no) == bill_id)))
            .scalars()
            .all()
        )
        cancellations = (
            await session.execute(
                select(func.count()).where(
                    col(SandboxCall.system) == "insurance",
                    col(SandboxCall.operation) == "cancel_settlement",
                    col(SandboxCall.request)["mdtrt_id"].astext
                    == select(col(InsuranceSettlement.mdtrt_id))
                    .where(col(InsuranceSettlement.bill_id) == bill_id)
                    .scalar_subquery(),
                )
            )
        ).scalar()
        [refund] = (await session.execute(select(Refund).where(col(Refund.bill_id) == bill_id))).scalars().all()
    # Only the self-pay part went through the channel, once, and only it came back that way.
    assert order is not None and order.amount_fen == part["cash_fen"] and order.charges == 1
    assert [r.amount_fen for r in channel_refunds] == [part["cash_fen"]]
    assert cancellations == 1
    assert (refund.amount_fen, refund.insurance_fen, refund.final) == (part["cash_fen"], bill["insurance_fen"], True)
    assert bill["invoice"]["invoice_no"] and bill["invoice"]["red_invoice_no"]
    # The notices: paid with its split and a link to the bill, the refund with when each part arrives.
    newest_first = (await journey.call("GET", "/me/notifications", journey.patient, params={"limit": 50}))["items"]
    inbox: dict[str, str] = {}
    for notice in newest_first:
        inbox.setdefault(notice["template"], notice["body"])
    assert f"http://127.0.0.1:8000/api/v1/bills/{bill_id}" in inbox["bill_paid"]
    assert "统筹基金支付" in inbox["bill_paid"] and "个人自付" in inbox["bill_paid"]
    assert "医保部分" in inbox["refund_started"] and "原路退回，即时到账" in inbox["refund_started"]
    assert bill["invoice"]["red_invoice_no"] in inbox["invoice_reversed"]


async def paid_no_show(stack) -> str:  # type: ignore[no-untyped-def]
    """A registration paid at the sandbox channel whose patient never came (the fee is kept until someone decides)."""
    visit = await make_consult_visit(stack.sessions, stage="no_show")
    bill_id = f"{visit.visit_id}-reg"
    async with stack.sessions() as session, session.begin():
        session.add(
            Bill(id=bill_id, kind="registration", ref_id=visit.visit_id, patient_id=visit.patient_id, amount_fen=5000,
                 status="paid", channel="sandbox", paid_at=datetime.now(UTC), description="在线复诊挂号费")
        )  # fmt: skip
    channel = SandboxPayment(stack.sessions, stack.settings)
    await channel.create_order(
        idempotency_key=f"{bill_id}:create", out_trade_no=bill_id, amount_fen=5000, description="挂号费",
        expires_at=datetime.now(UTC).replace(year=2100),
    )  # fmt: skip
    await channel.simulate_payment(bill_id)
    return bill_id


async def test_an_administrator_authorizes_a_refund_recorded_audited_and_capped(make_stack) -> None:
    stack = await make_stack()
    journey = Journey(stack.http)
    bill_id = await paid_no_show(stack)
    body = {"reason_code": "patient_unable_to_attend", "reason": "患者住院，未能按时就诊", "amount_fen": 3000}
    await journey.call("POST", f"/bills/{bill_id}/refunds", journey.patient, expected=403, json=body)
    started = await journey.call("POST", f"/bills/{bill_id}/refunds", journey.admin, expected=202, json=body)
    assert started["refund_id"] == f"{bill_id}-a1" and started["kind"] == "authorized"
    [done] = await journey.until(
        "授权退款完成",
        lambda: journey.call("GET", f"/bills/{bill_id}/refunds", journey.admin),
        lambda refunds: [r["status"] for r in refunds] == ["succeeded"],
    )
    assert (done["channel_fen"], done["reason_code"], done["kind"]) == (3000, "patient_unable_to_attend", "authorized")
    assert done["authorized_by"] and done["final"] is False

    # What is left is 20.00 元: asking for more is refused, and the rest can still be refunded.
    over = await journey.http.post(
        f"/api/v1/bills/{bill_id}/refunds",
        json={**body, "amount_fen": 2001},
        headers=await journey.login(journey.admin),
    )
    assert over.status_code == 409 and over.json()["code"] == "REFUND_EXCEEDS_PAID"
    rest = await journey.call(
        "POST", f"/bills/{bill_id}/refunds", journey.admin, expected=202,
        json={"reason_code": "schedule_changed", "reason": "医院调整排班"},
    )  # fmt: skip
    assert rest["refund_id"] == f"{bill_id}-a2" and rest["amount_fen"] == 2000
    await journey.until(
        "全部退回",
        lambda: journey.call("GET", f"/bills/{bill_id}/refunds", journey.admin),
        lambda refunds: [r["status"] for r in refunds] == ["succeeded", "succeeded"],
    )
    bill = await journey.call("GET", f"/bills/{bill_id}", journey.admin)
    assert bill["refunded_fen"] == bill["amount_fen"] == 5000
    async with stack.sessions() as session:
        audited = (
            (
                await session.execute(
                    select(AuditEvent.reason).where(
                        col(AuditEvent.action) == "refund.authorize", col(AuditEvent.subject_id) == bill_id
                    )
                )
            )
            .scalars()
            .all()
        )
        charged = (await session.execute(select(func.sum(SandboxRefund.amount_fen)).where(
            col(SandboxRefund.out_trade_no) == bill_id))).scalar()  # fmt: skip
    assert sorted(audited) == ["医院调整排班", "患者住院，未能按时就诊"]
    assert charged == 5000


async def test_a_visit_still_running_is_refunded_by_its_own_flow(make_stack) -> None:
    stack = await make_stack()
    journey = Journey(stack.http)
    visit = await make_consult_visit(stack.sessions, stage="waiting_doctor")
    bill_id = f"{visit.visit_id}-reg"
    async with stack.sessions() as session, session.begin():
        session.add(
            Bill(id=bill_id, kind="registration", ref_id=visit.visit_id, patient_id=visit.patient_id, amount_fen=5000,
                 status="paid", channel="sandbox", paid_at=datetime.now(UTC))
        )  # fmt: skip
    refused = await journey.http.post(
        f"/api/v1/bills/{bill_id}/refunds",
        json={"reason_code": "schedule_changed", "reason": "调整排班"},
        headers=await journey.login(journey.admin),
    )
    assert refused.status_code == 409 and refused.json()["code"] == "VISIT_IN_PROGRESS"


async def test_refund_request_before_dispatch_and_special_refund_after(make_stack) -> None:
    stack = await make_stack()
    identity = DEMO_IDENTITIES["demo-patient"]
    _, disease, doctor_id = DEMO_HIS_DIAGNOSES["demo-patient"]

    # Paid, not yet dispensed: the patient asks, the pharmacist approves, the order is withdrawn and all refunded.
    asking = Journey(stack.http)
    await asking.register_patient(identity, disease)
    visit = await asking.book(await asking.free_slot(doctor_id, disease))
    await asking.pay(visit["bill_id"], "挂号费")
    await asking.visit_stage(visit["visit_id"], "waiting_doctor", asking.patient)
    rx_id = await asking.consult(visit["visit_id"])
    await asking.review(rx_id)
    # Paid with 医保: the fund's part is settled, the patient pays the rest at the channel.
    confirmed = await asking.call(
        "POST", f"/prescriptions/{rx_id}/confirm", asking.patient,
        json={"pickup": "hospital", "insurance": {"ec_token": DEMO_EC_TOKEN, "use_account": False}},
    )  # fmt: skip
    insured = await asking.call("GET", f"/bills/{confirmed['bill_id']}", asking.patient)
    assert insured["insurance"]["status"] == "settled" and insured["insurance_fen"] > 0
    assert insured["amount_fen"] == insured["insurance"]["cash_fen"] == insured["total_fen"] - insured["insurance_fen"]
    await asking.pay(confirmed["bill_id"], "药费个人自付部分")
    await asking.until(
        "药房接单",
        lambda: asking.call("GET", f"/prescriptions/{rx_id}", asking.pharmacist),
        lambda d: (d.get("fulfilment") or {}).get("pharmacy_order_no") is not None,
    )
    request = {"reason": "病情好转，不再需要"}
    await asking.call("POST", f"/prescriptions/{rx_id}/refund-request", asking.patient, json=request)
    decided = await asking.call(
        "POST", f"/prescriptions/{rx_id}/refund-request/decision", asking.pharmacist, json={"approve": True}
    )
    assert decided["status"] == "refunded"
    detail = await asking.call("GET", f"/prescriptions/{rx_id}", asking.patient)
    assert detail["state"]["stage"] == "void"
    bill = await asking.call("GET", f"/bills/{rx_id}-pay", asking.patient)
    assert bill["refunded_fen"] == bill["amount_fen"] > 0
    assert bill["insurance_refunded_fen"] == bill["insurance_fen"] and bill["insurance"]["status"] == "cancelled"

    # Delivered and signed for: only a special refund, paid as the three parties agreed.
    special = Journey(stack.http)
    await special.happy_path(identity, doctor_id, disease)
    rx_id = special.ids["prescription"].removeprefix("rx-")
    bill_id = f"{rx_id}-pay"
    late = await special.http.post(
        f"/api/v1/prescriptions/{rx_id}/refund-request", json=request, headers=await special.login(special.patient)
    )
    assert late.status_code == 409
    opened = await special.call(
        "POST", f"/bills/{bill_id}/special-refunds", special.admin, expected=202,
        json={"reason": "药品运输途中受潮", "amount_fen": 2000},
    )  # fmt: skip
    refund_id = opened["refund_id"]
    await special.until(
        "协商开始",
        lambda: special.call("GET", f"/bills/{bill_id}/refunds", special.admin),
        lambda refunds: [(r["refund_id"], r["status"]) for r in refunds] == [(refund_id, "negotiating")],
    )
    early = await special.http.post(
        f"/api/v1/refunds/{refund_id}/conclusion", json={"approve": True}, headers=await special.login(special.admin)
    )
    assert early.status_code == 409 and early.json()["code"] == "NEGOTIATION_INCOMPLETE"
    for party, agreed, amount in (("hospital", True, 500), ("supplier", True, 1000), ("courier", True, 300)):
        await special.call(
            "POST", f"/refunds/{refund_id}/negotiation", special.admin,
            json={"party": party, "agreed": agreed, "amount_fen": amount, "note": f"{party} 同意"},
        )  # fmt: skip
    await special.call("POST", f"/refunds/{refund_id}/conclusion", special.admin, json={"approve": True})
    done = await special.until(
        "特殊退款完成",
        lambda: special.call("GET", f"/refunds/{refund_id}", special.patient),
        lambda r: r["status"] == "succeeded",
    )
    assert done["channel_fen"] == 1800 and [n["party"] for n in done["negotiation"]] == [
        "hospital",
        "supplier",
        "courier",
    ]
    bill = await special.call("GET", f"/bills/{bill_id}", special.patient)
    assert bill["refunded_fen"] == 1800
    async with stack.sessions() as session:
        actions = (
            (
                await session.execute(
                    select(AuditEvent.action).where(col(AuditEvent.subject_id).in_([refund_id, bill_id, rx_id]))
                )
            )
            .scalars()
            .all()
        )
    assert {"refund.special", "refund.negotiation", "refund.conclude"} <= set(actions)

"""Issue 5 item 6 over HTTP, as the apps drive it: an admin configures a partner pharmacy (社会药房) and its
pharmacist; the patient chooses to pick up there with the herbs decocted; once paid the prescription is routed there
(the reason shown to the patient); only the partner's pharmacist may re-check it, and the signed re-check verifies;
the patient reads the medication guidance, signs off with the pickup code, is due a refill reminder, and reports an
adverse reaction that the dispensing pharmacist answers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlmodel import col

from activities.adapters.pharmacy.sandbox import SandboxPharmacy
from models.common import Role
from models.fulfilment import RefillState
from models.tables import Fulfilment
from tests.api.helpers import login, make_user
from workers.journey import PRESCRIPTION, Journey
from workers.seed import DEMO_HIS_DIAGNOSES, DEMO_IDENTITIES
from workflows.refill import refill_workflow_id


async def test_partner_pickup_rechecked_there_guided_signed_and_followed_up(make_stack, client) -> None:  # type: ignore[no-untyped-def]
    stack = await make_stack()
    http, sessions = stack.http, stack.sessions
    journey = Journey(http)
    pharmacy_id = f"tongren-{uuid.uuid4().hex[:6]}"

    # The admin sets up the partner and its pharmacist; its shelves (the sandbox's) hold every herb of the formula.
    user, pharmacist_id = await make_user(sessions, Role.PHARMACIST, display_name="社会药房药师")
    partner = await login(http, user)
    await journey.call(
        "PUT", f"/admin/pharmacies/{pharmacy_id}", journey.admin,
        json={"name": "同仁堂东城店", "adapter": "sandbox", "pickup": True, "decoction": True,
              "address": "北京市东城区东直门内大街5号"},
    )  # fmt: skip
    await journey.call(
        "PUT", f"/admin/pharmacies/{pharmacy_id}/pharmacists/{pharmacist_id}", journey.admin, expected=204
    )
    shelf = SandboxPharmacy(sessions, stack.settings, pharmacy_id=pharmacy_id)
    for item in PRESCRIPTION["items"]:
        await shelf.set_stock(item["herb"], 1_000)

    _, disease, doctor = DEMO_HIS_DIAGNOSES["demo-patient"]
    identity = DEMO_IDENTITIES["demo-patient"]
    await journey.register_patient(identity, disease)
    visit = await journey.book(await journey.free_slot(doctor, disease))
    await journey.pay(visit["bill_id"], "挂号费")
    await journey.visit_stage(visit["visit_id"], "waiting_doctor", journey.patient)
    rx_id = await journey.consult(visit["visit_id"])
    await journey.review(rx_id)

    listed = await journey.call("GET", "/pharmacies", journey.patient)
    assert pharmacy_id in {p["pharmacy_id"] for p in listed}
    confirmed = await journey.call(
        "POST", f"/prescriptions/{rx_id}/confirm", journey.patient,
        json={"pickup": "pharmacy", "pharmacy_id": pharmacy_id, "decoction_service": True},
    )  # fmt: skip
    early = await http.get(f"/api/v1/prescriptions/{rx_id}/guidance", headers=await journey.login(journey.patient))
    assert early.status_code == 409 and early.json()["code"] == "RX_NOT_PAID"
    await journey.pay(confirmed["bill_id"], "药费")

    # Routed to the partner the patient chose; the patient sees where and why.
    detail = await journey.until(
        "派送至合作药店",
        lambda: journey.call("GET", f"/prescriptions/{rx_id}", journey.patient),
        lambda d: (d.get("fulfilment") or {}).get("pharmacy_order_no") is not None,
    )
    route = detail["fulfilment"]["pharmacy"]
    assert (route["pharmacy_id"], route["own"]) == (pharmacy_id, False)
    assert route["reason"] == "患者选择到同仁堂东城店取药，可代煎，饮片库存充足"
    assert await shelf.stock_of("党参") == 1_000 - 35 * 7
    orders = (await http.get("/api/v1/pharmacies/me/orders", headers=partner)).json()
    assert rx_id in {o["prescription_id"] for o in orders}

    # Only the partner's pharmacist re-checks; the decision is signed.
    refused = await http.post(
        f"/api/v1/prescriptions/{rx_id}/dispense",
        json={"approve": True},
        headers=await journey.login(journey.pharmacist),
    )
    assert refused.status_code == 409 and refused.json()["code"] == "NOT_THIS_PHARMACY"
    checked = await http.post(
        f"/api/v1/prescriptions/{rx_id}/dispense", json={"approve": True, "note": "用法用量适宜"}, headers=partner
    )
    assert checked.status_code == 200, checked.text
    signatures = await journey.call("GET", f"/prescriptions/{rx_id}/signatures", journey.patient)
    assert len(signatures) == 4 and all(s["valid"] for s in signatures)
    assert (signatures[-1]["signer_id"], signatures[-1]["reason"]) == (pharmacist_id, "用法用量适宜")

    guide = await journey.call("GET", f"/prescriptions/{rx_id}/guidance", journey.patient)
    assert guide["decocted_by_pharmacy"] and guide["decoction"] == [] and guide["times_per_day"] == 2
    assert any(c["kind"] == "incompatible" and c["herbs"] == ["党参"] for c in guide["cautions"])

    # Picked up at the partner's counter with the pickup code; then a refill reminder is due before the 7 days end.
    await journey.until(
        "可取药",
        lambda: journey.call("GET", f"/prescriptions/{rx_id}", journey.patient),
        lambda d: (d.get("fulfilment") or {}).get("stage") == "delivered",
    )
    code = (await journey.call("GET", f"/prescriptions/{rx_id}/pickup-code", journey.patient))["pickup_code"]
    signed = await http.post(f"/api/v1/prescriptions/{rx_id}/sign-off", json={"pickup_code": code}, headers=partner)
    assert signed.status_code == 200 and signed.json()["accepted"]
    await journey.until(
        "处方完成",
        lambda: journey.call("GET", f"/prescriptions/{rx_id}", journey.patient),
        lambda d: d["state"]["stage"] == "completed",
    )
    refill = client.get_workflow_handle(refill_workflow_id(rx_id))

    async def planned() -> RefillState | None:
        try:
            return await refill.query("state", result_type=RefillState)
        except Exception:
            return None

    plan = await journey.until("续方提醒", planned, lambda s: s is not None and s.remind_at is not None)
    assert datetime.now(UTC) + timedelta(days=2) < plan.remind_at < datetime.now(UTC) + timedelta(days=7)
    async with sessions() as session:
        remind_at = await session.scalar(
            select(col(Fulfilment.refill_remind_at)).where(col(Fulfilment.prescription_id) == rx_id)
        )
    assert remind_at == plan.remind_at

    # The patient reports an adverse reaction; the dispensing pharmacist is told and answers.
    report = await journey.call(
        "POST", f"/prescriptions/{rx_id}/adverse-reactions", journey.patient, expected=201,
        json={"severity": "mild", "symptoms": "服药后胃部轻微不适"},
    )  # fmt: skip

    async def inbox(headers: dict[str, str], template_title: str) -> list[dict]:
        items = (await http.get("/api/v1/me/notifications", headers=headers)).json()["items"]
        return [n for n in items if n["title"] == template_title]

    await journey.until(
        "药师收到不良反应报告",
        lambda: inbox(partner, "用药不良反应报告"),
        lambda found: any(report["report_id"] in n["body"] for n in found),
    )
    answered = await http.post(
        f"/api/v1/adverse-reactions/{report['report_id']}/response",
        json={"action": "continue", "advice": "饭后服用可减轻不适，注意观察。"},
        headers=partner,
    )
    assert answered.status_code == 200 and answered.json()["stage"] == "responded"
    patient = await journey.login(journey.patient)
    answer = await journey.until(
        "患者收到药师答复",
        lambda: inbox(patient, "药师答复"),
        lambda found: any("饭后服用可减轻不适" in n["body"] for n in found),
    )
    assert answer

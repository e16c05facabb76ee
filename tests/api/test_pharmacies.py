"""Partner pharmacies over the API: admins configure them and their pharmacists (audited), patients list and choose
them, each pharmacist sees the orders routed to their own pharmacy, and only that pharmacy's pharmacists re-check
(the Fulfilment flow with fake activities decides)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from temporalio.client import Client

from models.common import Role
from models.fulfilment import FulfilmentInput, PharmacyRoute
from models.prescription import PickupMethod
from models.tables import Fulfilment
from tests.api.consult_helpers import make_consult_visit, make_prescription
from tests.api.helpers import login, make_user
from tests.api.scheduling import audit_events
from tests.workflows.fakes import FakeWorld
from tests.workflows.test_prescription import DRAFT, until
from workers.worker import build_workers
from workflows.fulfilment import FulfilmentWorkflow, fulfilment_workflow_id

PARTNER = {
    "name": "同仁堂东城店",
    "adapter": "sandbox",
    "regions": ["北京市东城区"],
    "delivers": True,
    "pickup": True,
    "decoction": True,
    "address": "北京市东城区某路1号",
    "phone": "010-12345678",
}


async def _admin(api, sessions) -> dict[str, str]:  # type: ignore[no-untyped-def]
    user, _ = await make_user(sessions, Role.ADMIN)
    return await login(api, user)


async def _partner(api, auth: dict[str, str], **changes: object) -> str:  # type: ignore[no-untyped-def]
    pharmacy_id = f"ph-{uuid.uuid4().hex[:8]}"
    answer = await api.put(f"/api/v1/admin/pharmacies/{pharmacy_id}", json={**PARTNER, **changes}, headers=auth)
    assert answer.status_code == 200, answer.text
    return pharmacy_id


async def test_admins_configure_partners_and_their_pharmacists_audited(api, sessions) -> None:  # type: ignore[no-untyped-def]
    admin = await _admin(api, sessions)
    pharmacy_id = await _partner(api, admin)
    changed = await api.put(
        f"/api/v1/admin/pharmacies/{pharmacy_id}", json={**PARTNER, "decoction": False, "priority": 5}, headers=admin
    )
    assert changed.status_code == 200 and changed.json()["decoction"] is False and changed.json()["priority"] == 5

    unknown = await api.put(
        f"/api/v1/admin/pharmacies/{pharmacy_id}", json={**PARTNER, "adapter": "no-such"}, headers=admin
    )
    assert unknown.status_code == 409 and unknown.json()["code"] == "UNKNOWN_ADAPTER"
    reserved = await api.put("/api/v1/admin/pharmacies/hospital", json=PARTNER, headers=admin)
    assert reserved.status_code == 409 and reserved.json()["code"] == "RESERVED_ID"

    _, pharmacist_id = await make_user(sessions, Role.PHARMACIST)
    url = f"/api/v1/admin/pharmacies/{pharmacy_id}/pharmacists/{pharmacist_id}"
    assert (await api.put(url, headers=admin)).status_code == 204
    missing = await api.put(f"/api/v1/admin/pharmacies/{pharmacy_id}/pharmacists/nobody", headers=admin)
    assert missing.status_code == 404
    listed = {p["pharmacy_id"]: p for p in (await api.get("/api/v1/admin/pharmacies", headers=admin)).json()}
    assert listed["hospital"]["own"] and listed[pharmacy_id]["pharmacists"] == [pharmacist_id]
    assert (await api.delete(url, headers=admin)).status_code == 204
    assert (await api.delete(url, headers=admin)).status_code == 404

    actions = [event.action for event in await audit_events(sessions, pharmacy_id)]
    assert actions == [
        "pharmacy.created",
        "pharmacy.updated",
        "pharmacy.pharmacist_assigned",
        "pharmacy.pharmacist_removed",
    ]

    patient_user, _ = await make_user(sessions, Role.PATIENT)
    patient = await login(api, patient_user)
    assert (await api.put(f"/api/v1/admin/pharmacies/{pharmacy_id}", json=PARTNER, headers=patient)).status_code == 403
    assert (await api.get("/api/v1/admin/pharmacies", headers=patient)).status_code == 403


async def test_patients_see_partners_in_service_and_may_only_choose_one_offering_what_they_ask(api, sessions) -> None:  # type: ignore[no-untyped-def]
    admin = await _admin(api, sessions)
    open_id = await _partner(api, admin, decoction=False)
    closed_id = await _partner(api, admin, active=False)
    visit = await make_consult_visit(sessions)
    rx_id = await make_prescription(sessions, visit, "awaiting_confirmation", DRAFT)
    patient = await login(api, visit.patient_user)

    shown = {p["pharmacy_id"]: p for p in (await api.get("/api/v1/pharmacies", headers=patient)).json()}
    assert open_id in shown and closed_id not in shown
    assert shown[open_id]["address"] == PARTNER["address"] and "adapter" not in shown[open_id]

    confirm = f"/api/v1/prescriptions/{rx_id}/confirm"
    nameless = await api.post(confirm, json={"pickup": "pharmacy"}, headers=patient)
    assert nameless.status_code == 422
    for body, detail in (
        ({"pickup": "pharmacy", "pharmacy_id": closed_id}, "所选药店不存在或不提供取药服务"),
        ({"pickup": "pharmacy", "pharmacy_id": open_id, "decoction_service": True}, "所选药店不提供代煎服务"),
    ):
        refused = await api.post(confirm, json=body, headers=patient)
        assert refused.status_code == 409 and refused.json()["code"] == "PHARMACY_UNAVAILABLE", refused.text
        assert refused.json()["detail"] == detail
    hospital = await api.post(confirm, json={"pickup": "hospital", "pharmacy_id": open_id}, headers=patient)
    assert hospital.status_code == 422 and hospital.json()["code"] == "PHARMACY_NOT_APPLICABLE"


@pytest_asyncio.fixture
async def queue(client: Client) -> AsyncIterator[tuple[str, FakeWorld]]:
    world = FakeWorld()
    name = f"api-pharmacies-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        for worker in build_workers(client, name, world.activity_sets()):
            await stack.enter_async_context(worker)
        yield name, world


async def test_only_the_routed_pharmacys_pharmacist_rechecks_and_sees_the_order(
    api, sessions, client: Client, queue
) -> None:  # type: ignore[no-untyped-def]
    name, world = queue
    admin = await _admin(api, sessions)
    pharmacy_id = await _partner(api, admin)
    partner_user, partner_pharmacist = await make_user(sessions, Role.PHARMACIST)
    hospital_user, _ = await make_user(sessions, Role.PHARMACIST)
    await api.put(f"/api/v1/admin/pharmacies/{pharmacy_id}/pharmacists/{partner_pharmacist}", headers=admin)
    partner, hospital = await login(api, partner_user), await login(api, hospital_user)

    visit = await make_consult_visit(sessions)
    rx_id = await make_prescription(sessions, visit, "fulfilling", DRAFT, pickup="pharmacy")
    async with sessions() as session, session.begin():
        # The read model as the flow keeps it (the fake activities do not write it).
        session.add(
            Fulfilment(prescription_id=rx_id, patient_id=visit.patient_id, stage="at_pharmacy", pickup="pharmacy",
                       pharmacy_id=pharmacy_id, pharmacy_reason="患者选择到同仁堂东城店取药，饮片库存充足",
                       updated_at=datetime.now(UTC) - timedelta(minutes=5))
        )  # fmt: skip
    world.route = PharmacyRoute(pharmacy_id=pharmacy_id, name="同仁堂东城店", own=False, reason="患者选择")
    handle = await client.start_workflow(
        FulfilmentWorkflow.run,
        FulfilmentInput(prescription_id=rx_id, patient_id=visit.patient_id, pickup=PickupMethod.PHARMACY,
                        delivery_sla_s=60),
        id=fulfilment_workflow_id(rx_id),
        task_queue=name,
    )  # fmt: skip
    try:

        async def ordered() -> bool:
            return (await handle.query(FulfilmentWorkflow.state)).pharmacy_order_no is not None

        await until(ordered)
        mine = (await api.get("/api/v1/pharmacies/me/orders", headers=partner)).json()
        assert [o["prescription_id"] for o in mine] == [rx_id] and mine[0]["reason"].startswith("患者选择")
        theirs = (await api.get("/api/v1/pharmacies/me/orders", params={"limit": 200}, headers=hospital)).json()
        assert rx_id not in {o["prescription_id"] for o in theirs}

        dispense = f"/api/v1/prescriptions/{rx_id}/dispense"
        elsewhere = await api.post(dispense, json={"approve": True}, headers=hospital)
        assert elsewhere.status_code == 409 and elsewhere.json()["code"] == "NOT_THIS_PHARMACY"
        checked = await api.post(dispense, json={"approve": True, "note": "适宜"}, headers=partner)
        assert checked.status_code == 200, checked.text
        recheck = checked.json()["recheck"]
        assert (recheck["pharmacist_id"], recheck["pharmacy_id"], recheck["approve"]) == (
            partner_pharmacist,
            pharmacy_id,
            True,
        )
        assert checked.json()["pharmacy"]["pharmacy_id"] == pharmacy_id
        assert [c.pharmacy_id for c in world.rechecks] == [pharmacy_id]
    finally:
        await handle.terminate("test done")

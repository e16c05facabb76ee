"""One patient never reads or changes another's records; a doctor sees only the visits assigned to them."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import col

from models.tables import AuditEvent
from workers.journey import Journey
from workers.seed import DEMO_HIS_DIAGNOSES, DEMO_IDENTITIES


@pytest.fixture
async def owned(make_stack):
    """demo-patient's visit (in consult, with a prescription) and bill, made through the API."""
    stack = await make_stack()
    journey = Journey(stack.http)
    _, disease, doctor = DEMO_HIS_DIAGNOSES["demo-patient"]
    await journey.register_patient(DEMO_IDENTITIES["demo-patient"], disease)
    visit = await journey.book(await journey.free_slot(doctor, disease))
    await journey.pay(visit["bill_id"], "挂号费")
    await journey.visit_stage(visit["visit_id"], "waiting_doctor", journey.patient)
    prescription_id = await journey.consult(visit["visit_id"])
    other = Journey(stack.http, patient="demo-patient2", doctor="demo-doctor2")
    return journey, other, visit, prescription_id


READS = [
    "/visits/{visit}",
    "/prescriptions/{rx}",
    "/prescriptions/{rx}/pickup-code",
    "/bills/{bill}",
]
WRITES = [
    ("/visits/{visit}/cancel", {"reason": "x"}),
    ("/prescriptions/{rx}/confirm", {"pickup": "hospital"}),
    ("/prescriptions/{rx}/sign-off", {"pickup_code": "123456"}),
    ("/sandbox/cashier/{bill}/pay", None),
]


async def test_another_patient_gets_404_for_every_record_of_the_first(owned) -> None:
    journey, other, visit, rx = owned
    ids = {"visit": visit["visit_id"], "rx": rx, "bill": visit["bill_id"]}
    for path in READS:
        answer = await other.http.get(f"/api/v1{path.format(**ids)}", headers=await other.login(other.patient))
        assert answer.status_code == 404, path
        assert answer.json()["code"] == "NOT_FOUND"
    for path, body in WRITES:
        answer = await other.http.post(
            f"/api/v1{path.format(**ids)}", json=body, headers=await other.login(other.patient)
        )
        assert answer.status_code == 404, path
    for listing, key in (("/visits", "visit_id"), ("/prescriptions", "prescription_id"), ("/bills", "bill_id")):
        items = await other.call("GET", listing, other.patient)
        assert ids[{"visit_id": "visit", "prescription_id": "rx", "bill_id": "bill"}[key]] not in {
            i[key] for i in items
        }
    # The owner still sees everything, and nothing was changed by the attempts.
    assert (await journey.call("GET", f"/visits/{ids['visit']}", journey.patient))["stage"] == "finished"
    assert (await journey.call("GET", f"/bills/{ids['bill']}", journey.patient))["status"] == "paid"


async def test_a_doctor_cannot_see_or_act_on_another_doctors_visit(owned) -> None:
    _, other, visit, rx = owned
    headers = await other.login(other.doctor)
    assert (await other.http.get(f"/api/v1/visits/{visit['visit_id']}", headers=headers)).status_code == 404
    assert (await other.http.get(f"/api/v1/prescriptions/{rx}", headers=headers)).status_code == 404
    answer = await other.http.post(f"/api/v1/visits/{visit['visit_id']}/abort", json={"reason": "x"}, headers=headers)
    assert answer.status_code == 404


async def test_roles_are_enforced_on_flow_steps(owned) -> None:
    journey, _, visit, rx = owned
    patient = await journey.login(journey.patient)
    review = await journey.http.post(f"/api/v1/prescriptions/{rx}/review", json={"approve": True}, headers=patient)
    assert review.status_code == 403 and review.json()["code"] == "FORBIDDEN"
    check = await journey.http.post(
        "/api/v1/prescriptions/check",
        json={"patient": {"age_years": 30, "sex": "male"}, "items": [{"herb": "甘草", "dose_g": 6}], "doses": 3},
        headers=patient,
    )
    assert check.status_code == 403
    anonymous = await journey.http.get(f"/api/v1/visits/{visit['visit_id']}")
    assert anonymous.status_code == 401


async def test_every_read_of_a_patients_records_is_audited(owned, sessions) -> None:
    journey, _, visit, rx = owned
    me = await journey.call("GET", "/me", journey.patient)
    patient_id = me["patient"]["id"]
    reads = {
        "visit.read": (f"/visits/{visit['visit_id']}", visit["visit_id"]),
        "prescription.read": (f"/prescriptions/{rx}", rx),
        "bill.read": (f"/bills/{visit['bill_id']}", visit["bill_id"]),
        "consult_messages.read": (f"/visits/{visit['visit_id']}/messages", visit["visit_id"]),
    }
    for path, _ in reads.values():
        await journey.call("GET", path, journey.patient)
    async with sessions() as session:
        for action, (_, subject_id) in reads.items():
            rows = (
                (
                    await session.execute(
                        select(AuditEvent).where(
                            col(AuditEvent.action) == action, col(AuditEvent.subject_id) == subject_id
                        )
                    )
                )
                .scalars()
                .all()
            )
            mine = [row for row in rows if row.actor_user_id == me["user_id"]]
            assert mine, action
            assert mine[-1].detail["patient_id"] == patient_id and mine[-1].client_ip is not None

"""The whole follow-up journey over the HTTP API, as the patient, doctor, pharmacist and courier apps drive it."""

from __future__ import annotations

from sqlalchemy import func, select

from models.tables import Notification, Prescription, SandboxCall, SandboxPayOrder
from workers.journey import Journey
from workers.seed import DEMO_HIS_DIAGNOSES, DEMO_IDENTITIES


async def test_full_journey_from_real_name_to_pickup_code_sign_off(make_stack) -> None:
    stack = await make_stack()
    journey = Journey(stack.http)
    _, disease, doctor = DEMO_HIS_DIAGNOSES["demo-patient"]
    await journey.happy_path(DEMO_IDENTITIES["demo-patient"], doctor, disease)

    steps = [step.what for step in journey.timeline]
    assert steps[0].startswith("签署知情同意书")
    assert "药师审方通过" in steps and steps[-1] == "凭提货码签收"
    rx_id = journey.ids["prescription"].removeprefix("rx-")
    async with stack.sessions() as session:
        bills = [journey.ids["registration_bill"].removeprefix("bill-"), f"{rx_id}-pay"]
        charges = (
            (await session.execute(select(SandboxPayOrder.charges).where(SandboxPayOrder.out_trade_no.in_(bills))))
            .scalars()
            .all()
        )
        shipments = (
            await session.execute(
                select(func.count()).where(
                    SandboxCall.system == "courier",
                    SandboxCall.idempotency_key == f"fulfil-{rx_id}:courier",
                )
            )
        ).scalar()
        pickup_notices = (
            await session.execute(select(func.count()).where(Notification.key.like(f"fulfil-{rx_id}:pickup-code:%")))
        ).scalar()
    assert charges == [1, 1]
    assert shipments == 1
    assert pickup_notices == 1

    # The doctor's and the pharmacist's signatures verified during the journey; a prescription altered afterwards
    # in the database no longer matches them.
    async with stack.sessions() as session, session.begin():
        row = await session.get(Prescription, rx_id)
        # The doctor's, the doctor's second one with the reason for the dose above the maximum, the pharmacist's;
        # the dispensing pharmacist's signed re-check is kept with the fulfilment.
        assert row is not None and len(row.signatures) == 3
        row.draft = {**row.draft, "doses": row.draft["doses"] + 1}
    checks = await journey.call("GET", f"/prescriptions/{rx_id}/signatures", journey.patient)
    assert [(check["valid"], check["problem"]) for check in checks] == [(False, "处方内容与签名时不一致")] * 4


async def test_unpaid_registration_auto_closes_and_frees_the_slot(make_stack) -> None:
    stack = await make_stack(registration_pay_window_s=2)
    journey = Journey(stack.http, patient="demo-patient2")
    _, disease, doctor = DEMO_HIS_DIAGNOSES["demo-patient2"]
    await journey.register_patient(DEMO_IDENTITIES["demo-patient2"], disease)
    await journey.unpaid_bill_closes(doctor, disease)


async def test_doctor_abort_refunds_the_registration_fee(make_stack) -> None:
    stack = await make_stack()
    _, disease, doctor_id = DEMO_HIS_DIAGNOSES["demo-patient2"]
    journey = Journey(stack.http, patient="demo-patient2", doctor=f"demo-doctor{doctor_id.removeprefix('doc-')}")
    await journey.register_patient(DEMO_IDENTITIES["demo-patient2"], disease)
    await journey.doctor_aborts(doctor_id, disease)

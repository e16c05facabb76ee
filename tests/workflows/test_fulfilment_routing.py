"""Routing to a pharmacy, the routed pharmacy's signed re-check, and the refill reminder after sign-off: the
Fulfilment flow (alone, and as the Prescription's child) with fake activities."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from models.billing import ChannelOrderStatus, PaymentNotice
from models.fulfilment import (
    OWN_PHARMACY,
    DispenseCheck,
    FulfilmentInput,
    FulfilmentStage,
    PharmacyRoute,
    RefillState,
    SignOff,
)
from models.prescription import ConfirmPrescription, PickupMethod, ReviewPrescription, RxStage, SignPrescription
from tests.workflows.conftest import Harness
from tests.workflows.test_fulfilment import ready_for_pickup
from tests.workflows.test_prescription import checked, start, until
from workflows.bill import BillWorkflow, bill_workflow_id
from workflows.fulfilment import FulfilmentWorkflow, fulfilment_workflow_id
from workflows.prescription import PrescriptionWorkflow
from workflows.refill import RefillReminderWorkflow, refill_workflow_id

PARTNER = PharmacyRoute(
    pharmacy_id="ph-tongren",
    name="同仁堂东城店",
    own=False,
    reason="患者选择到同仁堂东城店取药，饮片库存充足",
)


async def start_fulfilment(h: Harness, pickup: PickupMethod = PickupMethod.PHARMACY) -> WorkflowHandle:
    rx_id = f"rx-{uuid.uuid4().hex[:8]}"
    return await h.client.start_workflow(
        FulfilmentWorkflow.run,
        FulfilmentInput(prescription_id=rx_id, patient_id="pat-1", pickup=pickup, delivery_sla_s=60),
        id=fulfilment_workflow_id(rx_id),
        task_queue=h.queue,
    )


async def at_pharmacy(handle: WorkflowHandle) -> None:
    async def ordered() -> bool:
        return (await handle.query(FulfilmentWorkflow.state)).pharmacy_order_no is not None

    await until(ordered)


async def test_routed_to_a_partner_only_its_pharmacist_rechecks_and_the_decision_is_signed(harness: Harness) -> None:
    world = harness.world
    world.route = PARTNER
    handle = await start_fulfilment(harness)
    await at_pharmacy(handle)

    state = await handle.query(FulfilmentWorkflow.state)
    assert state.pharmacy == PARTNER
    assert world.orders == ["ph-tongren"]  # the order went to the routed pharmacy
    routed = [n for n in world.notices if n.template == "rx_routed"]
    assert [(n.user_ref, n.params["pharmacy"]) for n in routed] == [("patient:pat-1", "同仁堂东城店")]

    with pytest.raises(WorkflowUpdateFailedError) as elsewhere:  # a hospital pharmacist
        await handle.execute_update(FulfilmentWorkflow.dispense, DispenseCheck(pharmacist_id="ph-1", approve=True))
    assert elsewhere.value.cause.type == "NOT_THIS_PHARMACY"
    assert world.rechecks == []

    checked_state = await handle.execute_update(
        FulfilmentWorkflow.dispense,
        DispenseCheck(pharmacist_id="ph-partner", approve=True, note="用法用量适宜", pharmacy_id="ph-tongren"),
    )
    assert checked_state.stage in (FulfilmentStage.DISPENSED, FulfilmentStage.DELIVERED)
    recheck = checked_state.recheck
    assert recheck is not None and recheck.approve and recheck.pharmacy_id == "ph-tongren"
    assert recheck.signature.signer_id == "ph-partner" and recheck.signature.reason == "用法用量适宜"
    assert [c.pharmacist_id for c in world.rechecks] == ["ph-partner"]

    with pytest.raises(WorkflowUpdateFailedError) as again:
        await handle.execute_update(
            FulfilmentWorkflow.dispense,
            DispenseCheck(pharmacist_id="ph-partner", approve=True, pharmacy_id="ph-tongren"),
        )
    assert again.value.cause.type == "NOT_AWAITING_DISPENSING"
    await handle.terminate("test done")


async def test_a_refused_recheck_is_signed_cancels_the_order_at_that_pharmacy_and_fails(harness: Harness) -> None:
    world = harness.world
    world.route = PARTNER
    handle = await start_fulfilment(harness)
    await at_pharmacy(handle)
    with pytest.raises(WorkflowUpdateFailedError) as reasonless:
        await handle.execute_update(
            FulfilmentWorkflow.dispense, DispenseCheck(pharmacist_id="ph-p", approve=False, pharmacy_id="ph-tongren")
        )
    assert reasonless.value.cause.type == "REASON_REQUIRED"

    refused = DispenseCheck(pharmacist_id="ph-p", approve=False, note="附子未注明先煎", pharmacy_id="ph-tongren")
    await handle.execute_update(FulfilmentWorkflow.dispense, refused)
    final = await handle.result()
    assert final.stage is FulfilmentStage.FAILED
    assert final.failure_reason == "调剂药师复核未通过：附子未注明先煎"
    assert (
        final.recheck is not None and not final.recheck.approve and final.recheck.signature.reason == "附子未注明先煎"
    )
    assert world.calls["cancel_pharmacy_order"] == 1 and world.calls["issue_pickup_code"] == 0


async def test_no_pharmacy_able_to_take_it_fails_before_any_order(harness: Harness) -> None:
    harness.world.no_pharmacy = "没有能够调剂该处方的药房：本院药房：不提供代煎"
    handle = await start_fulfilment(harness, PickupMethod.DELIVERY)
    final = await handle.result()
    assert final.stage is FulfilmentStage.FAILED
    assert final.failure_reason == "没有能够调剂该处方的药房：本院药房：不提供代煎"
    assert harness.world.calls["submit_to_pharmacy"] == 0


async def signed_for(h: Harness) -> tuple[str, WorkflowHandle]:
    """Dispensed at the hospital, picked up and signed for: the prescription id and its refill reminder flow."""
    handle = await ready_for_pickup(h)
    await handle.execute_update(FulfilmentWorkflow.sign_off, SignOff(actor_id="pat-1", pickup_code="123456"))
    assert (await handle.result()).stage is FulfilmentStage.SIGNED
    rx_id = handle.id.removeprefix("fulfil-")
    return rx_id, h.client.get_workflow_handle(refill_workflow_id(rx_id), result_type=RefillState)


async def test_signing_for_the_medicine_starts_the_refill_reminder_which_offers_a_renewal(harness: Harness) -> None:
    world = harness.world
    world.refill_after_s = 1
    rx_id, refill = await signed_for(harness)
    reminded = await refill.result()
    assert reminded.reminded and reminded.remind_at is not None
    [planned] = world.refills
    assert planned.prescription_id == rx_id and planned.patient_id == "pat-1"
    [notice] = [n for n in world.notices if n.template == "refill_reminder"]
    assert notice.user_ref == "patient:pat-1" and notice.params["doctor"] == "李医生"
    assert (await refill.query(RefillReminderWorkflow.state)).reminded


async def test_a_prescription_renewed_meanwhile_gets_no_reminder(harness: Harness) -> None:
    world = harness.world
    world.refill_after_s, world.refill_skip = 1, "已续方（处方 rx-2）"
    _, refill = await signed_for(harness)
    skipped = await refill.result()
    assert not skipped.reminded and skipped.skipped == "已续方（处方 rx-2）"
    assert not [n for n in world.notices if n.template == "refill_reminder"]


async def test_partner_pickup_recheck_refused_refunds_the_prescription(harness: Harness) -> None:
    """The whole chain: confirmed for pickup at a partner pharmacy, paid, routed there, refused at its re-check,
    refunded through the Prescription's refund path and voided."""
    world = harness.world
    world.route = PARTNER
    rx, handle = await start(harness)
    await checked(handle)
    await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
    await handle.execute_update(PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-1", approve=True))
    confirmed = await handle.execute_update(
        PrescriptionWorkflow.confirm,
        ConfirmPrescription(patient_id="pat-1", pickup=PickupMethod.PHARMACY, pharmacy_id="ph-tongren"),
    )
    assert confirmed.pickup is PickupMethod.PHARMACY
    bill_id = f"{rx.prescription_id}-pay"
    await harness.client.get_workflow_handle(bill_workflow_id(bill_id)).signal(
        BillWorkflow.payment_notice,
        PaymentNotice(out_trade_no=bill_id, status=ChannelOrderStatus.SUCCESS, amount_fen=300),
    )
    fulfil = harness.client.get_workflow_handle(fulfilment_workflow_id(rx.prescription_id))

    async def ordered() -> bool:
        try:
            return (await fulfil.query(FulfilmentWorkflow.state)).pharmacy_order_no is not None
        except Exception:
            return False

    await until(ordered)
    assert (await fulfil.query(FulfilmentWorkflow.state)).pickup is PickupMethod.PHARMACY
    await fulfil.execute_update(
        FulfilmentWorkflow.dispense,
        DispenseCheck(pharmacist_id="ph-p", approve=False, note="饮片受潮", pharmacy_id="ph-tongren"),
    )
    final = await handle.result()
    assert final.stage is RxStage.VOID and final.void_reason == "调剂药师复核未通过：饮片受潮"
    [refund] = world.refunds
    assert refund.amount_fen == 300 and refund.reason == "调剂药师复核未通过：饮片受潮"
    assert OWN_PHARMACY not in world.orders

"""The Prescription flow with its Bill and Fulfilment children, on the dev server with fake activities."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from models.billing import ChannelOrderStatus, PaymentNotice
from models.fulfilment import CourierEvent, CourierStatus, DispenseCheck, FulfilmentStage, SignOff
from models.prescription import (
    CheckResult,
    ConfirmPrescription,
    Finding,
    PickupMethod,
    PrescriptionDraft,
    PrescriptionInput,
    ReviewPrescription,
    RevisePrescription,
    RxItem,
    RxStage,
    Severity,
    SignPrescription,
    Verdict,
)
from tests.workflows.conftest import Harness
from workflows.bill import BillWorkflow, bill_workflow_id
from workflows.fulfilment import FulfilmentWorkflow, fulfilment_workflow_id
from workflows.prescription import PrescriptionWorkflow, prescription_workflow_id

DRAFT = PrescriptionDraft(
    diagnosis="胃痞病 脾虚湿阻证",
    items=[RxItem(herb="党参", dose_g=15), RxItem(herb="白术", dose_g=12), RxItem(herb="茯苓", dose_g=15)],
    doses=7,
)


async def start(h: Harness, prescription_id: str | None = None) -> tuple[PrescriptionInput, WorkflowHandle]:
    rx = PrescriptionInput(
        prescription_id=prescription_id or f"rx-{uuid.uuid4().hex[:8]}",
        visit_id="visit-1",
        patient_id="pat-1",
        doctor_id="doc-1",
        draft=DRAFT,
        channel="sandbox",
        review_sla_s=600,
        pay_window_s=600,
        delivery_sla_s=3600,
    )
    handle = await h.client.start_workflow(
        PrescriptionWorkflow.run, rx, id=prescription_workflow_id(rx.prescription_id), task_queue=h.queue
    )
    return rx, handle


async def until(predicate, attempts: int = 200) -> None:
    for _ in range(attempts):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never held")


async def checked(handle: WorkflowHandle) -> None:
    async def done() -> bool:
        return (await handle.query(PrescriptionWorkflow.state)).check is not None

    await until(done)


async def test_rejected_prescription_is_revised_approved_paid_delivered_and_signed_off(harness: Harness) -> None:
    rx, handle = await start(harness)
    await checked(handle)
    signed = await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
    assert signed.stage is RxStage.AWAITING_REVIEW and len(signed.doctor_signatures) == 1

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-1", approve=False)
        )
    assert refused.value.cause.type == "RX_REASON_REQUIRED"

    returned = await handle.execute_update(
        PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-1", approve=False, reason="茯苓剂量请核对")
    )
    assert returned.stage is RxStage.RETURNED and returned.review_reason == "茯苓剂量请核对"

    revised_draft = DRAFT.model_copy(update={"items": [*DRAFT.items[:2], RxItem(herb="茯苓", dose_g=12)]})
    revised = await handle.execute_update(
        PrescriptionWorkflow.revise, RevisePrescription(doctor_id="doc-1", draft=revised_draft)
    )
    assert revised.revision == 1 and revised.stage is RxStage.DRAFT and revised.doctor_signatures == []
    await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
    approved = await handle.execute_update(
        PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-1", approve=True)
    )
    assert approved.stage is RxStage.AWAITING_CONFIRMATION
    assert approved.pharmacist_signature is not None and approved.pharmacist_signature.signer_id == "ph-1"

    with pytest.raises(WorkflowUpdateFailedError) as no_address:
        await handle.execute_update(
            PrescriptionWorkflow.confirm, ConfirmPrescription(patient_id="pat-1", pickup=PickupMethod.DELIVERY)
        )
    assert no_address.value.cause.type == "ADDRESS_REQUIRED"
    confirmed = await handle.execute_update(
        PrescriptionWorkflow.confirm,
        ConfirmPrescription(
            patient_id="pat-1",
            pickup=PickupMethod.DELIVERY,
            address="北京市东城区某路1号",
            recipient="张三",
            phone="13800138000",
        ),
    )
    assert confirmed.stage is RxStage.AWAITING_PAYMENT and confirmed.pay_url
    assert confirmed.total_fen == 300

    bill_id = f"{rx.prescription_id}-pay"
    await harness.client.get_workflow_handle(bill_workflow_id(bill_id)).signal(
        BillWorkflow.payment_notice,
        PaymentNotice(out_trade_no=bill_id, status=ChannelOrderStatus.SUCCESS, amount_fen=300, transaction_id="T2"),
    )
    fulfil = harness.client.get_workflow_handle(fulfilment_workflow_id(rx.prescription_id))

    async def at_pharmacy() -> bool:
        try:
            return (await fulfil.query(FulfilmentWorkflow.state)).pharmacy_order_no is not None
        except Exception:
            return False

    await until(at_pharmacy)
    dispensed = await fulfil.execute_update(
        FulfilmentWorkflow.dispense, DispenseCheck(pharmacist_id="ph-2", approve=True)
    )
    assert dispensed.stage in (FulfilmentStage.DISPENSED, FulfilmentStage.SHIPPED)

    async def shipped() -> bool:
        return (await fulfil.query(FulfilmentWorkflow.state)).stage is FulfilmentStage.SHIPPED

    await until(shipped)
    waybill = (await fulfil.query(FulfilmentWorkflow.state)).waybill_no
    with pytest.raises(WorkflowUpdateFailedError) as early:
        await fulfil.execute_update(FulfilmentWorkflow.sign_off, SignOff(actor_id="pat-1", pickup_code="123456"))
    assert early.value.cause.type == "NOT_AWAITING_SIGN_OFF"

    await fulfil.signal(
        FulfilmentWorkflow.courier_event,
        CourierEvent(waybill_no=waybill, status=CourierStatus.DELIVERED, occurred_at=datetime.now(UTC)),
    )

    async def delivered() -> bool:
        return (await fulfil.query(FulfilmentWorkflow.state)).stage is FulfilmentStage.DELIVERED

    await until(delivered)
    wrong = await fulfil.execute_update(FulfilmentWorkflow.sign_off, SignOff(actor_id="pat-1", pickup_code="000000"))
    assert not wrong.accepted and wrong.attempts_left == 4
    right = await fulfil.execute_update(FulfilmentWorkflow.sign_off, SignOff(actor_id="pat-1", pickup_code="123456"))
    assert right.accepted

    final = await handle.result()
    assert final.stage is RxStage.COMPLETED
    assert harness.world.calls["book_courier"] == 1 and harness.world.calls["submit_to_pharmacy"] == 1
    templates = [n.template for n in harness.world.notices]
    assert {"rx_to_review", "rx_returned", "rx_approved", "rx_paid", "pickup_code", "shipped", "signed"} <= set(
        templates
    )


async def test_blocked_prescription_cannot_be_signed_and_sign_again_needs_a_reason(harness: Harness) -> None:
    harness.world.check = CheckResult(
        verdict=Verdict.BLOCK,
        findings=[Finding(code="BANNED_ONLINE", severity=Severity.BLOCK, herbs=["罂粟壳"], message="禁止在线开具")],
    )
    _, blocked = await start(harness)
    await checked(blocked)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await blocked.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
    assert refused.value.cause.type == "RX_BLOCKED"
    await blocked.terminate("test done")

    harness.world.check = CheckResult(
        verdict=Verdict.SIGN_AGAIN,
        findings=[Finding(code="DOSE_ABOVE_MAX", severity=Severity.SIGN_AGAIN, herbs=["党参"], message="超量")],
    )
    _, handle = await start(harness)
    await checked(handle)
    with pytest.raises(WorkflowUpdateFailedError) as reasonless:
        await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
    assert reasonless.value.cause.type == "RX_REASON_REQUIRED"
    signed = await handle.execute_update(
        PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1", reason="久病体虚，需加大党参用量")
    )
    assert [s.reason for s in signed.doctor_signatures] == [None, "久病体虚，需加大党参用量"]
    with pytest.raises(WorkflowUpdateFailedError) as other_doctor:
        await handle.execute_update(PrescriptionWorkflow.revise, RevisePrescription(doctor_id="doc-2", draft=DRAFT))
    assert other_doctor.value.cause.type == "FORBIDDEN"
    await handle.terminate("test done")


async def paid(h: Harness, prescription_id: str | None = None) -> tuple[str, WorkflowHandle]:
    """A prescription signed, approved, confirmed for pickup at the hospital and paid: its bill and its flow."""
    rx, handle = await start(h, prescription_id)
    await checked(handle)
    await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
    await handle.execute_update(PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-1", approve=True))
    await handle.execute_update(
        PrescriptionWorkflow.confirm, ConfirmPrescription(patient_id="pat-1", pickup=PickupMethod.HOSPITAL)
    )
    bill_id = f"{rx.prescription_id}-pay"
    await h.client.get_workflow_handle(bill_workflow_id(bill_id)).signal(
        BillWorkflow.payment_notice,
        PaymentNotice(out_trade_no=bill_id, status=ChannelOrderStatus.SUCCESS, amount_fen=300),
    )
    return bill_id, handle


async def test_pharmacy_refusal_after_payment_refunds_and_voids(harness: Harness) -> None:
    harness.world.pharmacy_refuses = True
    bill_id, handle = await paid(harness)
    final = await handle.result()
    assert final.stage is RxStage.VOID
    assert final.void_reason == "甘草库存不足"
    [refund] = harness.world.refunds
    assert refund.amount_fen == 300 and refund.bill_id == bill_id

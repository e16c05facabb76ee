"""The Visit flow with its Bill, Refund and Prescription children, on the dev server with fake activities."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy

from models.billing import ChannelOrderStatus, PaymentNotice
from models.prescription import PrescriptionDraft, RxItem
from models.record import SignRecord
from models.visit import (
    AbortVisit,
    AcceptVisit,
    BookingRequest,
    CancelVisit,
    CheckIn,
    FinishVisit,
    Prescribe,
    TcmRecord,
    VisitInput,
    VisitStage,
    WriteRecord,
)
from tests.workflows.conftest import Harness
from workflows.bill import BillWorkflow, bill_workflow_id
from workflows.visit import VisitWorkflow, visit_workflow_id

RECORD = TcmRecord(
    chief_complaint="胃脘胀满反复3月，加重1周",
    present_illness="3月前饮食不节后出现胃脘胀满，食后尤甚",
    tongue="舌淡苔白腻",
    pulse="脉濡缓",
    tcm_disease="胃痞病",
    tcm_syndrome="脾虚湿阻证",
    treatment_principle="健脾化湿，理气消痞",
)


def visit_input(
    pay_window_s: int = 60,
    accept_window_s: int = 600,
    starts_in: timedelta = timedelta(hours=1),
    lasts: timedelta = timedelta(minutes=15),
) -> VisitInput:
    starts = datetime.now(UTC) + starts_in
    return VisitInput(
        visit_id=f"slot-{uuid.uuid4().hex[:8]}",
        patient_id="pat-1",
        doctor_id="doc-1",
        slot_id="slot-1",
        disease_code="D1",
        fee_fen=3000,
        starts_at=starts,
        ends_at=starts + lasts,
        channel="sandbox",
        pay_window_s=pay_window_s,
        accept_window_s=accept_window_s,
        review_sla_s=600,
        rx_pay_window_s=600,
        delivery_sla_s=3600,
    )


async def book(h: Harness, visit: VisitInput, patient_id: str = "pat-1"):
    start = WithStartWorkflowOperation(
        VisitWorkflow.run,
        visit,
        id=visit_workflow_id(visit.visit_id),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=h.queue,
    )
    state = await h.client.execute_update_with_start_workflow(
        VisitWorkflow.book, BookingRequest(patient_id=patient_id), start_workflow_operation=start
    )
    return state, await start.workflow_handle()


async def pay(h: Harness, visit: VisitInput) -> None:
    bill_id = f"{visit.visit_id}-reg"
    await h.client.get_workflow_handle(bill_workflow_id(bill_id)).signal(
        BillWorkflow.payment_notice,
        PaymentNotice(
            out_trade_no=bill_id, status=ChannelOrderStatus.SUCCESS, amount_fen=visit.fee_fen, transaction_id="T1"
        ),
    )


async def wait_stage(handle, stage: VisitStage) -> None:
    for _ in range(100):
        if (await handle.query(VisitWorkflow.state)).stage is stage:
            return
        import asyncio

        await asyncio.sleep(0.05)
    raise AssertionError(f"visit never reached {stage}")


async def test_booking_answers_with_the_bill_and_a_paid_visit_runs_to_finished(harness: Harness) -> None:
    visit = visit_input()
    state, handle = await book(harness, visit)
    assert state.stage is VisitStage.AWAITING_PAYMENT
    assert state.bill_id == f"{visit.visit_id}-reg"
    assert state.pay_url and state.pay_deadline is not None

    # Booking again (a retried request) finds the same flow and the same bill.
    again, _ = await book(harness, visit)
    assert again.bill_id == state.bill_id

    await pay(harness, visit)
    await wait_stage(handle, VisitStage.WAITING_DOCTOR)
    accepted = await handle.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id="doc-1"))
    assert accepted.stage is VisitStage.IN_CONSULT

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(VisitWorkflow.finish, FinishVisit(doctor_id="doc-1"))
    assert refused.value.cause.type == "RECORD_REQUIRED"

    await handle.execute_update(VisitWorkflow.write_record, WriteRecord(doctor_id="doc-1", record=RECORD))
    draft = PrescriptionDraft(diagnosis="胃痞病 脾虚湿阻证", items=[RxItem(herb="党参", dose_g=15)], doses=7)
    rx_id = await handle.execute_update(
        VisitWorkflow.prescribe, Prescribe(doctor_id="doc-1", prescription_id=f"{visit.visit_id}-rx1", draft=draft)
    )
    assert rx_id == f"{visit.visit_id}-rx1"
    with pytest.raises(WorkflowUpdateFailedError) as unsigned:
        await handle.execute_update(VisitWorkflow.finish, FinishVisit(doctor_id="doc-1"))
    assert unsigned.value.cause.type == "RECORD_NOT_SIGNED"
    signed = await handle.execute_update(VisitWorkflow.sign_record, SignRecord(doctor_id="doc-1"))
    assert signed.record_signed
    # Signed, the record is locked: neither written over nor signed again.
    for locked in (
        handle.execute_update(VisitWorkflow.write_record, WriteRecord(doctor_id="doc-1", record=RECORD)),
        handle.execute_update(VisitWorkflow.sign_record, SignRecord(doctor_id="doc-1")),
    ):
        with pytest.raises(WorkflowUpdateFailedError) as refused_again:
            await locked
        assert refused_again.value.cause.type == "RECORD_SIGNED"
    await handle.execute_update(VisitWorkflow.finish, FinishVisit(doctor_id="doc-1"))
    final = await handle.result()

    assert final.stage is VisitStage.FINISHED
    assert final.queue_no == 7
    assert final.prescription_ids == [rx_id]
    calls = harness.world.calls
    assert calls["confirm_slot"] == 1 and calls["register_with_his"] == 1 and calls["release_slot"] == 0
    assert calls["create_channel_order"] == 1 and calls["reserve_refund"] == 0
    templates = {n.template for n in harness.world.notices}
    assert {"bill_opened", "bill_paid", "visit_booked", "visit_assigned", "visit_accepted"} <= templates
    [booked] = [n for n in harness.world.notices if n.template == "visit_booked"]
    assert booked.params["doctor"] == "测试医生"  # the name the slot's confirmation returned


async def test_another_patient_cannot_take_over_a_booking(harness: Harness) -> None:
    visit = visit_input()
    await book(harness, visit)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await book(harness, visit, patient_id="pat-2")
    assert refused.value.cause.type == "SLOT_TAKEN"


async def test_unpaid_bill_auto_closes_and_releases_the_slot(harness: Harness) -> None:
    visit = visit_input(pay_window_s=1)
    _, handle = await book(harness, visit)
    final = await handle.result()
    assert final.stage is VisitStage.CANCELLED
    calls = harness.world.calls
    assert calls["close_channel_order"] == 1 and calls["release_slot"] == 1
    assert calls["confirm_slot"] == 0 and calls["register_with_his"] == 0
    assert "bill_closed" in {n.template for n in harness.world.notices}


async def test_a_payment_found_when_closing_counts_as_paid(harness: Harness) -> None:
    """The callback was lost: closing at the channel reveals the payment, and the visit goes on."""
    harness.world.channel_paid_on_close = True
    visit = visit_input(pay_window_s=1)
    _, handle = await book(harness, visit)
    await wait_stage(handle, VisitStage.WAITING_DOCTOR)
    assert harness.world.calls["release_slot"] == 0
    await handle.terminate("test done")


async def test_patient_cancel_before_paying_closes_the_bill_at_once(harness: Harness) -> None:
    visit = visit_input(pay_window_s=600)
    _, handle = await book(harness, visit)
    await handle.execute_update(VisitWorkflow.cancel, CancelVisit(patient_id="pat-1", reason="时间冲突"))
    final = await handle.result()
    assert final.stage is VisitStage.CANCELLED
    assert harness.world.calls["close_channel_order"] == 1 and harness.world.calls["release_slot"] == 1
    # Notices at booking and at the cancel (8.1.3.1); the closed bill itself sends none.
    templates = [n.template for n in harness.world.notices]
    assert templates == ["bill_opened", "visit_cancelled"]


async def test_doctor_abort_refunds_the_registration_fee(harness: Harness) -> None:
    visit = visit_input()
    _, handle = await book(harness, visit)
    await pay(harness, visit)
    await wait_stage(handle, VisitStage.WAITING_DOCTOR)
    await handle.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id="doc-1"))

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(VisitWorkflow.abort, AbortVisit(doctor_id="doc-9", reason="x"))
    assert refused.value.cause.type == "FORBIDDEN"

    await handle.execute_update(
        VisitWorkflow.abort, AbortVisit(doctor_id="doc-1", reason="病情需线下就诊", advice="请尽快到门诊就诊。")
    )
    final = await handle.result()
    assert final.stage is VisitStage.ABORTED
    assert final.abort_reason == "病情需线下就诊"
    [refund] = harness.world.refunds
    assert refund.amount_fen == visit.fee_fen and refund.bill_id == f"{visit.visit_id}-reg"
    assert harness.world.calls["cancel_his_registration"] == 1
    assert "visit_aborted" in {n.template for n in harness.world.notices}


async def test_doctor_who_never_accepts_a_checked_in_patient_triggers_an_automatic_refund(harness: Harness) -> None:
    visit = visit_input(accept_window_s=1, starts_in=timedelta(seconds=0))
    _, handle = await book(harness, visit)
    await pay(harness, visit)
    await wait_stage(handle, VisitStage.WAITING_DOCTOR)
    checked_in = await handle.execute_update(VisitWorkflow.check_in, CheckIn(patient_id="pat-1"))
    assert checked_in.checked_in_at is not None
    final = await handle.result()
    assert final.stage is VisitStage.ABORTED
    assert final.abort_reason == "医生未在规定时间内接诊"
    [refund] = harness.world.refunds
    assert refund.amount_fen == visit.fee_fen
    assert harness.world.no_shows == []
    assert "visit_checked_in" in {n.template for n in harness.world.notices}


async def test_patient_who_never_checks_in_is_a_no_show_and_keeps_no_refund(harness: Harness) -> None:
    visit = visit_input(accept_window_s=1, starts_in=timedelta(seconds=0), lasts=timedelta(seconds=2))
    _, handle = await book(harness, visit)
    await pay(harness, visit)
    final = await handle.result()
    assert final.stage is VisitStage.NO_SHOW
    assert [v.visit_id for v in harness.world.no_shows] == [visit.visit_id]
    assert harness.world.refunds == [] and harness.world.calls["cancel_his_registration"] == 0
    [notice] = [n for n in harness.world.notices if n.template == "visit_no_show"]
    assert notice.user_ref == "patient:pat-1"


async def test_check_in_opens_half_an_hour_before_the_slot_and_only_for_the_patient(harness: Harness) -> None:
    visit = visit_input(starts_in=timedelta(hours=2))
    _, handle = await book(harness, visit)
    with pytest.raises(WorkflowUpdateFailedError) as unpaid:
        await handle.execute_update(VisitWorkflow.check_in, CheckIn(patient_id="pat-1"))
    assert unpaid.value.cause.type == "VISIT_NOT_WAITING"
    await pay(harness, visit)
    await wait_stage(handle, VisitStage.WAITING_DOCTOR)
    with pytest.raises(WorkflowUpdateFailedError) as early:
        await handle.execute_update(VisitWorkflow.check_in, CheckIn(patient_id="pat-1"))
    assert early.value.cause.type == "CHECK_IN_NOT_OPEN"
    with pytest.raises(WorkflowUpdateFailedError) as other:
        await handle.execute_update(VisitWorkflow.check_in, CheckIn(patient_id="pat-2"))
    assert other.value.cause.type == "FORBIDDEN"
    await handle.terminate("test done")

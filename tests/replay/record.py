"""Record the workflow histories under `tests/histories/` that `tests/replay/test_replay.py` replays.

Run with `.venv/bin/python -m tests.replay.record` (optionally naming scenarios, the keys of `SCENARIOS`, to record
only those, e.g. `... record Visit-doctor_abort_refund`; some scenarios also write the histories of the flows they
involve: children, or the Visits a ScheduleChange reached). It starts its own local dev server, runs each scenario
with the fake activities of `tests/workflows/fakes.py` on the real workers (`workers.worker.build_workers`), driven
the way the workflow tests drive them, and writes `<WorkflowType>-<scenario>.json` (`WorkflowHistory.to_json()`).

Only re-record for a *new* scenario, or after a change that `workflow.patched(...)` made safe and whose old
histories are kept. Never re-record to make a failing replay pass: that failure is the point (tests/histories/README.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio import activity
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from core.binaries import find_executable
from core.temporal import PLAINTEXT_CONVERTER
from models.billing import ChannelOrderStatus, ChannelRefund, PaymentNotice, RefundInput, RefundStatus
from models.fulfilment import (
    CourierEvent,
    CourierStatus,
    DispenseCheck,
    FulfilmentInput,
    FulfilmentStage,
    SignOff,
    UnlockSignOff,
)
from models.identity import IdentityCheckInput, RealNameResult
from models.prescription import (
    CheckResult,
    ConfirmPrescription,
    Finding,
    PickupMethod,
    PrescriptionInput,
    ReviewPrescription,
    RevisePrescription,
    RxItem,
    RxStage,
    Severity,
    SignPrescription,
    Verdict,
)
from models.revisit import OfflineDiagnosis, RevisitCheckInput, RevisitStatus
from models.schedule_change import AffectedVisit, ChangeKind, ChangeStatus
from models.visit import (
    AbortVisit,
    AcceptVisit,
    CancelVisit,
    CheckIn,
    FinishVisit,
    LeaveChoice,
    Prescribe,
    ResolveLeave,
    SlotMove,
    VisitInput,
    VisitStage,
    WriteRecord,
)
from tests.workflows.conftest import Harness
from tests.workflows.fakes import FakeWorld
from tests.workflows.test_prescription import DRAFT, checked, until
from tests.workflows.test_schedule_change import booked, change_input, offered
from tests.workflows.test_visit import RECORD, book, pay, visit_input, wait_stage
from workers.worker import build_workers
from workflows.bill import BillWorkflow, bill_workflow_id
from workflows.fulfilment import MAX_PICKUP_ATTEMPTS, FulfilmentWorkflow, fulfilment_workflow_id
from workflows.identity import IdentityVerificationWorkflow, identity_workflow_id
from workflows.prescription import PrescriptionWorkflow, prescription_workflow_id
from workflows.refund import RefundWorkflow, refund_workflow_id
from workflows.revisit import RevisitCheckWorkflow, revisit_workflow_id
from workflows.schedule_change import ScheduleChangeWorkflow, schedule_change_workflow_id
from workflows.visit import REMINDER_LEAD, VisitWorkflow

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
# A fixed identity keeps the recording machine's pid@hostname out of the committed files.
IDENTITY = "qihuang-history-recorder"

Scenario = Callable[["Recorder"], Awaitable[None]]


class RejectingWorld(FakeWorld):
    """The real-name check says no (the shared fake always matches)."""

    @activity.defn(name="verify_identity")
    async def verify_identity(self, check: IdentityCheckInput) -> RealNameResult:
        self._seen()
        return RealNameResult(matched=False, reason="姓名与证件号码不一致")


def compact_json(history: WorkflowHistory) -> str:
    """`history.to_json()` without the indentation: one event per line, so files stay small and diffs stay readable."""
    events = json.loads(history.to_json())["events"]
    lines = ",\n".join(json.dumps(event, ensure_ascii=False, separators=(",", ":")) for event in events)
    return f'{{"events": [\n{lines}\n]}}\n'


class SlowRefundWorld(FakeWorld):
    """The channel accepts the refund but is still processing it; its notice settles it later."""

    @activity.defn(name="request_channel_refund")
    async def request_channel_refund(self, refund: RefundInput) -> ChannelRefund:
        self._seen()
        return ChannelRefund(
            out_refund_no=refund.refund_id,
            out_trade_no=refund.bill_id,
            amount_fen=refund.amount_fen,
            status=RefundStatus.PROCESSING,
        )


class Recorder:
    def __init__(self, client: Client, out: Path) -> None:
        self.client = client
        self.out = out
        self.written: list[Path] = []

    @asynccontextmanager
    async def harness(self, name: str, world: FakeWorld | None = None) -> AsyncIterator[Harness]:
        """As the `harness` fixture of tests/workflows: real workers, fake activities, a queue of its own."""
        world = world or FakeWorld()
        queue = f"record-{name}"
        async with AsyncExitStack() as stack:
            for worker in build_workers(self.client, queue, world.activity_sets()):
                await stack.enter_async_context(worker)
            yield Harness(client=self.client, queue=queue, world=world)

    async def save(
        self,
        workflow_id: str,
        file_stem: str,
        status: WorkflowExecutionStatus = WorkflowExecutionStatus.COMPLETED,
    ) -> None:
        handle = self.client.get_workflow_handle(workflow_id)
        described = await handle.describe()
        for _ in range(100):
            if described.status is not WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.05)
            described = await handle.describe()
        workflow_type = file_stem.split("-", 1)[0]
        if described.workflow_type != workflow_type:
            raise AssertionError(f"{workflow_id} is a {described.workflow_type}, not a {workflow_type}")
        if described.status is not status:
            raise AssertionError(f"{workflow_id} ended {described.status}, expected {status}")
        history = await handle.fetch_history()
        text = compact_json(history)
        if WorkflowHistory.from_json(workflow_id, text).events != history.events:
            raise AssertionError(f"{file_stem}: the compact JSON does not read back as the same history")
        path = self.out / f"{file_stem}.json"
        path.write_text(text, encoding="utf-8")
        self.written.append(path)
        print(f"{path.name}: {len(history.events)} events, {path.stat().st_size} bytes")


async def timer_started(handle: WorkflowHandle) -> None:
    """Wait until the flow is waiting on a timer, so the message sent next meets the wait of the common case
    (a patient pays after the bill is open) rather than arriving before the flow gets there."""

    async def started() -> bool:
        history = await handle.fetch_history()
        return any(e.HasField("timer_started_event_attributes") for e in history.events)

    await until(started)


# --- scenarios: Visit (with its Bill and Refund children) ---


def _visit(visit_id: str, patient_id: str = "pat-1", slot_id: str = "slot-1", **kwargs: object) -> VisitInput:
    fixed = {"visit_id": visit_id, "patient_id": patient_id, "slot_id": slot_id}
    return visit_input(**kwargs).model_copy(update=fixed)  # type: ignore[arg-type]


async def _check_in(handle: WorkflowHandle) -> None:
    """Check in once the visit waits for its patient (its first timer), so every recording takes the same path."""
    await timer_started(handle)
    await handle.execute_update(VisitWorkflow.check_in, CheckIn(patient_id="pat-1"))


async def _consult(handle: WorkflowHandle, doctor_id: str) -> None:
    await handle.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id=doctor_id))
    await handle.execute_update(VisitWorkflow.write_record, WriteRecord(doctor_id=doctor_id, record=RECORD))
    await handle.execute_update(VisitWorkflow.finish, FinishVisit(doctor_id=doctor_id))
    assert (await handle.result()).stage is VisitStage.FINISHED


async def visit_finished_with_prescription(r: Recorder) -> None:
    """Starts just over the reminder lead away, so the reminder timer fires before the doctor accepts."""
    async with r.harness("visit-finished") as h:
        visit = _visit("rec-finished", starts_in=REMINDER_LEAD + timedelta(seconds=2))
        _, handle = await book(h, visit)
        await timer_started(h.client.get_workflow_handle(bill_workflow_id(f"{visit.visit_id}-reg")))
        await pay(h, visit)
        await wait_stage(handle, VisitStage.WAITING_DOCTOR)

        async def reminded() -> bool:
            return sum(n.template == "visit_reminder" for n in h.world.notices) == 2

        await until(reminded, attempts=100)
        await handle.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id="doc-1"))
        await handle.execute_update(VisitWorkflow.write_record, WriteRecord(doctor_id="doc-1", record=RECORD))
        rx_id = f"{visit.visit_id}-rx1"
        await handle.execute_update(
            VisitWorkflow.prescribe, Prescribe(doctor_id="doc-1", prescription_id=rx_id, draft=DRAFT)
        )
        await handle.execute_update(VisitWorkflow.finish, FinishVisit(doctor_id="doc-1"))
        assert (await handle.result()).stage is VisitStage.FINISHED
        await r.save(handle.id, "Visit-reminded_finished_with_prescription")
        await r.save(bill_workflow_id(f"{visit.visit_id}-reg"), "Bill-paid")
        # The prescription outlives the visit (ABANDON); its own scenarios record it.
        await h.client.get_workflow_handle(prescription_workflow_id(rx_id)).terminate("recorded elsewhere")


async def visit_unpaid_auto_close(r: Recorder) -> None:
    async with r.harness("visit-unpaid") as h:
        visit = _visit("rec-unpaid", pay_window_s=1)
        _, handle = await book(h, visit)
        assert (await handle.result()).stage is VisitStage.CANCELLED
        await r.save(handle.id, "Visit-unpaid_auto_close")
        await r.save(bill_workflow_id(f"{visit.visit_id}-reg"), "Bill-closed_unpaid")


async def visit_cancelled_before_payment(r: Recorder) -> None:
    async with r.harness("visit-cancel") as h:
        visit = _visit("rec-cancel", pay_window_s=600)
        _, handle = await book(h, visit)
        await timer_started(h.client.get_workflow_handle(bill_workflow_id(f"{visit.visit_id}-reg")))
        await handle.execute_update(VisitWorkflow.cancel, CancelVisit(patient_id="pat-1", reason="时间冲突"))
        assert (await handle.result()).stage is VisitStage.CANCELLED
        await r.save(handle.id, "Visit-cancelled_before_payment")
        await r.save(bill_workflow_id(f"{visit.visit_id}-reg"), "Bill-cancelled")


async def bill_paid_found_on_close(r: Recorder) -> None:
    """The channel's callback was lost: closing the order at the window's end finds it paid (the Bill is recorded)."""
    world = FakeWorld()
    world.channel_paid_on_close = True
    async with r.harness("bill-late-paid", world) as h:
        visit = _visit("rec-latepaid", pay_window_s=1, accept_window_s=2, starts_in=timedelta(seconds=0))
        _, handle = await book(h, visit)
        await _check_in(handle)
        assert (await handle.result()).stage is VisitStage.ABORTED  # paid after all; checked in; nobody accepted
        await r.save(bill_workflow_id(f"{visit.visit_id}-reg"), "Bill-paid_found_on_close")


async def refund_processing_then_notified(r: Recorder) -> None:
    """Started directly (it is a child elsewhere): the channel answers `processing`, then its notice settles it."""
    world = SlowRefundWorld()
    async with r.harness("refund-slow", world) as h:
        refund = RefundInput(
            refund_id="rec-slow-reg-r1",
            bill_id="rec-slow-reg",
            patient_id="pat-1",
            channel="sandbox",
            amount_fen=3000,
            reason="医生未在规定时间内接诊",
            requested_by="system",
        )
        handle = await h.client.start_workflow(
            RefundWorkflow.run, refund, id=refund_workflow_id(refund.bill_id, 1), task_queue=h.queue
        )

        await timer_started(handle)  # polling: the first wait for the channel's notice
        await handle.signal(
            RefundWorkflow.refund_notice,
            ChannelRefund(
                out_refund_no=refund.refund_id,
                out_trade_no=refund.bill_id,
                amount_fen=refund.amount_fen,
                status=RefundStatus.SUCCEEDED,
                refund_id="R-slow",
            ),
        )
        assert (await handle.result()).status is RefundStatus.SUCCEEDED
        await r.save(handle.id, "Refund-processing_then_notified")


async def visit_doctor_abort_refund(r: Recorder) -> None:
    async with r.harness("visit-abort") as h:
        visit = _visit("rec-abort")
        _, handle = await book(h, visit)
        await pay(h, visit)
        await wait_stage(handle, VisitStage.WAITING_DOCTOR)
        await handle.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id="doc-1"))
        await handle.execute_update(
            VisitWorkflow.abort, AbortVisit(doctor_id="doc-1", reason="病情需线下就诊", advice="请尽快到门诊就诊。")
        )
        assert (await handle.result()).stage is VisitStage.ABORTED
        await r.save(handle.id, "Visit-doctor_abort_refund")
        await r.save(refund_workflow_id(f"{visit.visit_id}-reg", 1), "Refund-succeeded")


async def visit_accept_timeout(r: Recorder) -> None:
    async with r.harness("visit-accept-timeout") as h:
        visit = _visit("rec-noaccept", accept_window_s=2, starts_in=timedelta(seconds=0))
        _, handle = await book(h, visit)
        await pay(h, visit)
        await _check_in(handle)
        final = await handle.result()
        assert final.stage is VisitStage.ABORTED and final.abort_reason == "医生未在规定时间内接诊"
        await r.save(handle.id, "Visit-accept_timeout_refund")


async def visit_no_show(r: Recorder) -> None:
    """Paid, never checked in: at the end of the (two-second) slot the visit is a no-show and keeps the fee."""
    async with r.harness("visit-no-show") as h:
        visit = _visit("rec-noshow", accept_window_s=1, starts_in=timedelta(seconds=0), lasts=timedelta(seconds=2))
        _, handle = await book(h, visit)
        await pay(h, visit)
        final = await handle.result()
        assert final.stage is VisitStage.NO_SHOW and h.world.refunds == []
        await r.save(handle.id, "Visit-no_show")


# --- scenarios: ScheduleChange, with the Visits it reaches ---


async def _change(h: Harness, change_id: str, kind: ChangeKind, visits: list[VisitInput]) -> WorkflowHandle:
    """As `change_schedule` of tests/workflows/test_schedule_change.py, under a fixed change id."""
    h.world.affected = [AffectedVisit(visit_id=v.visit_id, slot_id=v.slot_id, patient_id=v.patient_id) for v in visits]
    change = change_input(kind).model_copy(update={"change_id": change_id})
    start = WithStartWorkflowOperation(
        ScheduleChangeWorkflow.run,
        change,
        id=schedule_change_workflow_id(change_id),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=h.queue,
    )
    await h.client.execute_update_with_start_workflow(ScheduleChangeWorkflow.begin, start_workflow_operation=start)
    return await start.workflow_handle()


async def schedule_leave(r: Recorder) -> None:
    """A leave over two paid visits. One patient takes the full refund. The other first picks a dearer slot (refused),
    then a cheaper one with another doctor (the difference is refunded), and is seen there."""
    async with r.harness("change-leave") as h:
        by_refund = _visit("rec-leave-refund", slot_id="slot-leave-1")
        by_rebooking = _visit("rec-leave-rebook", patient_id="pat-2", slot_id="slot-leave-2")
        refund_handle, rebook_handle = [await booked(h, v) for v in (by_refund, by_rebooking)]
        change = await _change(h, "rec-leave", ChangeKind.LEAVE, [by_refund, by_rebooking])
        await offered(refund_handle)
        await offered(rebook_handle)

        ended = await refund_handle.execute_update(
            VisitWorkflow.resolve_leave, ResolveLeave(patient_id="pat-1", choice=LeaveChoice.REFUND)
        )
        assert ended.stage is VisitStage.CANCELLED and ended.refunded_fen == by_refund.fee_fen

        starts = datetime.now(UTC) + timedelta(days=1)
        h.world.rebook_to = SlotMove(
            slot_id="slot-leave-new",
            doctor_id="doc-2",
            doctor_name="王清和",
            starts_at=starts,
            ends_at=starts + timedelta(minutes=15),
            fee_fen=2000,
        )
        h.world.rebook_refusal = ("REBOOK_FEE_HIGHER", "该号源挂号费高于已付挂号费")
        choice = ResolveLeave(patient_id="pat-2", choice=LeaveChoice.REBOOK, slot_id="slot-dear")
        try:
            await rebook_handle.execute_update(VisitWorkflow.resolve_leave, choice)
        except WorkflowUpdateFailedError as refused:
            assert isinstance(refused.cause, ApplicationError) and refused.cause.type == "REBOOK_FEE_HIGHER"
        else:
            raise AssertionError("a dearer slot was taken")
        choice.slot_id = "slot-leave-new"
        moved = await rebook_handle.execute_update(VisitWorkflow.resolve_leave, choice)
        assert moved.stage is VisitStage.WAITING_DOCTOR and moved.refunded_fen == by_rebooking.fee_fen - 2000
        assert (await change.result()).status is ChangeStatus.DONE
        await _consult(rebook_handle, "doc-2")
        await r.save(change.id, "ScheduleChange-leave")
        await r.save(refund_handle.id, "Visit-leave_refund_by_choice")
        await r.save(rebook_handle.id, "Visit-leave_rebooked")


async def schedule_substitution(r: Recorder) -> None:
    """A substitute takes over a paid visit (re-registered with HIS under them) and sees the patient."""
    async with r.harness("change-substitution") as h:
        visit = _visit("rec-substituted", slot_id="slot-sub-1")
        handle = await booked(h, visit)
        change = await _change(h, "rec-substitution", ChangeKind.SUBSTITUTION, [visit])
        assert (await change.result()).status is ChangeStatus.DONE
        await _consult(handle, "doc-2")
        await r.save(change.id, "ScheduleChange-substitution")
        await r.save(handle.id, "Visit-substituted_finished")


# --- scenarios: Prescription (with its Bill, Fulfilment and Refund children) ---


async def _start_rx(h: Harness, rx_id: str, review_sla_s: int = 600, pay_window_s: int = 600) -> WorkflowHandle:
    rx = PrescriptionInput(
        prescription_id=rx_id,
        visit_id="visit-1",
        patient_id="pat-1",
        doctor_id="doc-1",
        draft=DRAFT,
        channel="sandbox",
        review_sla_s=review_sla_s,
        pay_window_s=pay_window_s,
        delivery_sla_s=3600,
    )
    return await h.client.start_workflow(
        PrescriptionWorkflow.run, rx, id=prescription_workflow_id(rx_id), task_queue=h.queue
    )


async def _pay_rx(h: Harness, rx_id: str, amount_fen: int) -> None:
    bill_id = f"{rx_id}-pay"
    await h.client.get_workflow_handle(bill_workflow_id(bill_id)).signal(
        BillWorkflow.payment_notice,
        PaymentNotice(
            out_trade_no=bill_id, status=ChannelOrderStatus.SUCCESS, amount_fen=amount_fen, transaction_id="T"
        ),
    )


async def _fulfilment_stage(h: Harness, rx_id: str, *stages: FulfilmentStage) -> WorkflowHandle:
    fulfil = h.client.get_workflow_handle(fulfilment_workflow_id(rx_id))

    async def reached() -> bool:
        try:
            state = await fulfil.query(FulfilmentWorkflow.state)
        except Exception:
            return False
        return state.pharmacy_order_no is not None and (not stages or state.stage in stages)

    await until(reached)
    return fulfil


async def rx_returned_revised_delivered(r: Recorder) -> None:
    async with r.harness("rx-delivered") as h:
        rx_id = "rec-rx-delivered"
        handle = await _start_rx(h, rx_id)
        await checked(handle)
        await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
        await handle.execute_update(
            PrescriptionWorkflow.review,
            ReviewPrescription(pharmacist_id="ph-1", approve=False, reason="茯苓剂量请核对"),
        )
        revised = DRAFT.model_copy(update={"items": [*DRAFT.items[:2], RxItem(herb="茯苓", dose_g=12)]})
        await handle.execute_update(PrescriptionWorkflow.revise, RevisePrescription(doctor_id="doc-1", draft=revised))
        await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
        await handle.execute_update(PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-1", approve=True))
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
        await _pay_rx(h, rx_id, confirmed.total_fen or 0)
        fulfil = await _fulfilment_stage(h, rx_id)
        await fulfil.execute_update(FulfilmentWorkflow.dispense, DispenseCheck(pharmacist_id="ph-2", approve=True))
        await _fulfilment_stage(h, rx_id, FulfilmentStage.SHIPPED)
        waybill = (await fulfil.query(FulfilmentWorkflow.state)).waybill_no or ""
        await fulfil.signal(
            FulfilmentWorkflow.courier_event,
            CourierEvent(waybill_no=waybill, status=CourierStatus.DELIVERED, occurred_at=datetime.now(UTC)),
        )
        await _fulfilment_stage(h, rx_id, FulfilmentStage.DELIVERED)
        wrong = await fulfil.execute_update(
            FulfilmentWorkflow.sign_off, SignOff(actor_id="pat-1", pickup_code="000000")
        )
        assert not wrong.accepted
        right = await fulfil.execute_update(
            FulfilmentWorkflow.sign_off, SignOff(actor_id="pat-1", pickup_code=h.world.pickup_code)
        )
        assert right.accepted
        assert (await handle.result()).stage is RxStage.COMPLETED
        await r.save(handle.id, "Prescription-returned_revised_approved_paid_completed")
        await r.save(fulfil.id, "Fulfilment-delivered_signed_after_one_wrong_code")


async def rx_blocked_revised_unconfirmed(r: Recorder) -> None:
    """A blocked draft cannot be signed (the validator refuses, leaving no trace); revised, approved, never confirmed."""
    world = FakeWorld()
    world.check = CheckResult(
        verdict=Verdict.BLOCK,
        findings=[Finding(code="BANNED_ONLINE", severity=Severity.BLOCK, herbs=["罂粟壳"], message="禁止在线开具")],
    )
    async with r.harness("rx-blocked", world) as h:
        handle = await _start_rx(h, "rec-rx-blocked", pay_window_s=1)
        await checked(handle)
        try:
            await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
        except WorkflowUpdateFailedError as refused:
            assert isinstance(refused.cause, ApplicationError) and refused.cause.type == "RX_BLOCKED"
        else:
            raise AssertionError("a blocked prescription was signed")
        world.check = CheckResult(verdict=Verdict.PASS, findings=[])
        await handle.execute_update(PrescriptionWorkflow.revise, RevisePrescription(doctor_id="doc-1", draft=DRAFT))
        await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
        await handle.execute_update(PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-1", approve=True))
        final = await handle.result()
        assert final.stage is RxStage.VOID and final.void_reason == "患者未在规定时间内确认处方"
        await r.save(handle.id, "Prescription-blocked_revised_approved_unconfirmed_void")


async def rx_sign_again_hospital_pickup(r: Recorder) -> None:
    world = FakeWorld()
    world.check = CheckResult(
        verdict=Verdict.SIGN_AGAIN,
        findings=[Finding(code="DOSE_ABOVE_MAX", severity=Severity.SIGN_AGAIN, herbs=["党参"], message="超量")],
    )
    async with r.harness("rx-sign-again", world) as h:
        rx_id = "rec-rx-sign-again"
        handle = await _start_rx(h, rx_id)
        await checked(handle)
        signed = await handle.execute_update(
            PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1", reason="久病体虚，需加大党参用量")
        )
        assert len(signed.doctor_signatures) == 2
        await handle.execute_update(PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-1", approve=True))
        confirmed = await handle.execute_update(
            PrescriptionWorkflow.confirm, ConfirmPrescription(patient_id="pat-1", pickup=PickupMethod.HOSPITAL)
        )
        await _pay_rx(h, rx_id, confirmed.total_fen or 0)
        fulfil = await _fulfilment_stage(h, rx_id)
        await fulfil.execute_update(FulfilmentWorkflow.dispense, DispenseCheck(pharmacist_id="ph-2", approve=True))
        await _fulfilment_stage(h, rx_id, FulfilmentStage.DELIVERED)
        await fulfil.execute_update(FulfilmentWorkflow.sign_off, SignOff(actor_id="pat-1", pickup_code="123456"))
        assert (await handle.result()).stage is RxStage.COMPLETED
        await r.save(handle.id, "Prescription-sign_again_hospital_pickup_completed")
        await r.save(fulfil.id, "Fulfilment-hospital_pickup_signed")


async def rx_pharmacy_refusal(r: Recorder) -> None:
    """Review overdue first (the SLA timer fires), then approved, paid, refused by the pharmacy, refunded, void."""
    world = FakeWorld()
    world.pharmacy_refuses = True
    async with r.harness("rx-refused", world) as h:
        rx_id = "rec-rx-refused"
        handle = await _start_rx(h, rx_id, review_sla_s=1)
        await checked(handle)
        await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))

        async def overdue() -> bool:
            return any(n.template == "rx_review_overdue" for n in world.notices)

        await until(overdue, attempts=100)
        await handle.execute_update(PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-1", approve=True))
        confirmed = await handle.execute_update(
            PrescriptionWorkflow.confirm, ConfirmPrescription(patient_id="pat-1", pickup=PickupMethod.HOSPITAL)
        )
        await _pay_rx(h, rx_id, confirmed.total_fen or 0)
        final = await handle.result()
        assert final.stage is RxStage.VOID and final.void_reason == "甘草库存不足"
        await r.save(handle.id, "Prescription-review_overdue_pharmacy_refused_refunded_void")
        await r.save(fulfilment_workflow_id(rx_id), "Fulfilment-pharmacy_refused")


async def rx_dispense_rejected(r: Recorder) -> None:
    """The dispensing pharmacist's re-check fails: the pharmacy order is cancelled (the Fulfilment is recorded)."""
    async with r.harness("rx-dispense-rejected") as h:
        rx_id = "rec-rx-dispense-no"
        handle = await _start_rx(h, rx_id)
        await checked(handle)
        await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
        await handle.execute_update(PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-1", approve=True))
        confirmed = await handle.execute_update(
            PrescriptionWorkflow.confirm, ConfirmPrescription(patient_id="pat-1", pickup=PickupMethod.HOSPITAL)
        )
        await _pay_rx(h, rx_id, confirmed.total_fen or 0)
        fulfil = await _fulfilment_stage(h, rx_id)
        await fulfil.execute_update(
            FulfilmentWorkflow.dispense, DispenseCheck(pharmacist_id="ph-2", approve=False, note="饮片受潮，需更换批次")
        )
        assert (await handle.result()).stage is RxStage.VOID
        assert h.world.calls["cancel_pharmacy_order"] == 1
        await r.save(fulfil.id, "Fulfilment-dispense_rejected")


async def fulfilment_locked_then_unlocked(r: Recorder) -> None:
    """Started directly (as tests/workflows/test_fulfilment.py does): every wrong pickup code used up locks sign-off;
    a pharmacist unlocks it and the right code signs."""
    async with r.harness("fulfil-locked") as h:
        rx_id = "rec-rx-locked"
        fulfilment = FulfilmentInput(
            prescription_id=rx_id, patient_id="pat-1", pickup=PickupMethod.HOSPITAL, delivery_sla_s=60
        )
        handle = await h.client.start_workflow(
            FulfilmentWorkflow.run, fulfilment, id=fulfilment_workflow_id(rx_id), task_queue=h.queue
        )
        await _fulfilment_stage(h, rx_id)
        await handle.execute_update(FulfilmentWorkflow.dispense, DispenseCheck(pharmacist_id="ph-1", approve=True))
        await _fulfilment_stage(h, rx_id, FulfilmentStage.DELIVERED)
        for _ in range(MAX_PICKUP_ATTEMPTS):
            wrong = SignOff(actor_id="pat-1", pickup_code="000000")
            assert not (await handle.execute_update(FulfilmentWorkflow.sign_off, wrong)).accepted
        await handle.execute_update(
            FulfilmentWorkflow.unlock_sign_off, UnlockSignOff(pharmacist_id="ph-1", reason="已当面核验收件人身份证件")
        )
        right = SignOff(actor_id="ph-1", pickup_code=h.world.pickup_code)
        assert (await handle.execute_update(FulfilmentWorkflow.sign_off, right)).accepted
        assert (await handle.result()).stage is FulfilmentStage.SIGNED
        await r.save(handle.id, "Fulfilment-locked_then_unlocked_signed")


# --- scenarios: RevisitCheck and IdentityVerification, started as the API starts them ---


async def _revisit(h: Harness, patient_id: str, valid_days: int = 30) -> WorkflowHandle:
    check = RevisitCheckInput(patient_id=patient_id, disease_code="D1", window_days=180, valid_days=valid_days)
    start = WithStartWorkflowOperation(
        RevisitCheckWorkflow.run,
        check,
        id=revisit_workflow_id(patient_id, check.disease_code),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=h.queue,
    )
    await h.client.execute_update_with_start_workflow(RevisitCheckWorkflow.decision, start_workflow_operation=start)
    return await start.workflow_handle()


async def revisit_not_eligible(r: Recorder) -> None:
    async with r.harness("revisit-no") as h:
        handle = await _revisit(h, "rec-pat-no")
        assert (await handle.result()).status is RevisitStatus.NOT_ELIGIBLE
        await r.save(handle.id, "RevisitCheck-not_eligible")


async def revisit_eligible(r: Recorder) -> None:
    """An eligible decision sleeps until it expires (whole days); recorded up to its timer, then terminated."""
    world = FakeWorld()
    world.evidence = [
        OfflineDiagnosis(
            encounter_id="E1",
            disease_code="D1",
            disease_name="胃痞病",
            diagnosed_at=datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
            department="脾胃病科",
            doctor_name="李医生",
        )
    ]
    async with r.harness("revisit-yes", world) as h:
        handle = await _revisit(h, "rec-pat-yes")

        await timer_started(handle)
        await handle.terminate("recorded up to the expiry timer")
        await r.save(handle.id, "RevisitCheck-eligible_until_expiry_terminated", WorkflowExecutionStatus.TERMINATED)


async def _identity(r: Recorder, name: str, world: FakeWorld, patient_id: str, file_stem: str) -> None:
    async with r.harness(name, world) as h:
        check = IdentityCheckInput(patient_id=patient_id, submission="0123456789abcdef0123")
        handle = await h.client.start_workflow(
            IdentityVerificationWorkflow.run,
            check,
            id=identity_workflow_id(patient_id, check.submission),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=h.queue,
        )
        await handle.result()
        await r.save(handle.id, file_stem)


async def identity_verified(r: Recorder) -> None:
    await _identity(r, "identity-ok", FakeWorld(), "rec-pat-ok", "IdentityVerification-verified")


async def identity_rejected(r: Recorder) -> None:
    await _identity(r, "identity-no", RejectingWorld(), "rec-pat-no", "IdentityVerification-rejected")


SCENARIOS: dict[str, Scenario] = {
    "Visit-reminded_finished_with_prescription": visit_finished_with_prescription,
    "Visit-unpaid_auto_close": visit_unpaid_auto_close,
    "Visit-cancelled_before_payment": visit_cancelled_before_payment,
    "Visit-doctor_abort_refund": visit_doctor_abort_refund,
    "Bill-paid_found_on_close": bill_paid_found_on_close,
    "Refund-processing_then_notified": refund_processing_then_notified,
    "Visit-accept_timeout_refund": visit_accept_timeout,
    "Visit-no_show": visit_no_show,
    "ScheduleChange-leave": schedule_leave,
    "ScheduleChange-substitution": schedule_substitution,
    "Prescription-returned_revised_approved_paid_completed": rx_returned_revised_delivered,
    "Prescription-blocked_revised_approved_unconfirmed_void": rx_blocked_revised_unconfirmed,
    "Prescription-sign_again_hospital_pickup_completed": rx_sign_again_hospital_pickup,
    "Prescription-review_overdue_pharmacy_refused_refunded_void": rx_pharmacy_refusal,
    "Fulfilment-dispense_rejected": rx_dispense_rejected,
    "Fulfilment-locked_then_unlocked_signed": fulfilment_locked_then_unlocked,
    "RevisitCheck-not_eligible": revisit_not_eligible,
    "RevisitCheck-eligible_until_expiry_terminated": revisit_eligible,
    "IdentityVerification-verified": identity_verified,
    "IdentityVerification-rejected": identity_rejected,
}


async def record(names: list[str], scenarios: Mapping[str, Scenario] = SCENARIOS) -> list[Path]:
    unknown = [n for n in names if n not in scenarios]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; known: {sorted(scenarios)}")
    HISTORIES.mkdir(exist_ok=True)
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_executable("temporal"),
        data_converter=PLAINTEXT_CONVERTER,
        identity=IDENTITY,
        dev_server_log_level="error",
        dev_server_startup_timeout=None,
    ) as env:
        recorder = Recorder(env.client, HISTORIES)
        for name in names or list(scenarios):
            await scenarios[name](recorder)
    return recorder.written


def main(scenarios: Mapping[str, Scenario] = SCENARIOS) -> None:
    """Record the named scenarios (all without names) of `scenarios`."""
    written = asyncio.run(record(sys.argv[1:], scenarios))
    total = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} histories, {total} bytes, to {HISTORIES}")
    # The SDK's Rust threads can abort interpreter teardown ("PyGILState_Release ... finalizing", SIGABRT; open as
    # temporalio/sdk-python#300). Everything is written and the server is stopped, so skip the teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()

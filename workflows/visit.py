"""Visit (8.1.3, 8.2): from a held slot to a finished online follow-up consult.

Started by booking through Update-with-Start (`book`), after PostgreSQL already gave the slot to this visit.
  awaiting_payment ─paid→ waiting_doctor ─accept→ in_consult ─finish→ finished
        │ unpaid/cancel          │ abort, accept timeout, cancel      │ abort
        ▼                         ▼                                   ▼
    cancelled (slot released)   aborted / cancelled (fee refunded, HIS registration cancelled)
Prescriptions written in the consult run as their own workflows and outlive the visit.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.adapters.his import HisRegistration
    from activities.prescriptions import PrescriptionActivities
    from activities.visits import VisitActivities
    from models.billing import BillInput, BillKind, BillState, BillStatus, RefundInput, RefundResult
    from models.prescription import PrescriptionInput, PrescriptionState, RxStage
    from models.visit import (
        AbortVisit,
        AcceptVisit,
        BookingRequest,
        CancelVisit,
        FinishVisit,
        Prescribe,
        VisitInput,
        VisitStage,
        VisitState,
        WriteRecord,
    )

from workflows.bill import BILL_OPENED_SIGNAL, BillWorkflow, bill_workflow_id
from workflows.prescription import PrescriptionWorkflow, prescription_workflow_id
from workflows.refund import RefundWorkflow, refund_workflow_id
from workflows.steps import call, db, local, notify

REMINDER_LEAD = timedelta(minutes=10)
_OPEN_STAGES = (VisitStage.WAITING_DOCTOR, VisitStage.IN_CONSULT)
_END_STAGES = (VisitStage.FINISHED, VisitStage.CANCELLED, VisitStage.ABORTED)


def visit_workflow_id(visit_id: str) -> str:
    return f"visit-{visit_id}"


@workflow.defn(name="Visit")
class VisitWorkflow:
    @workflow.init
    def __init__(self, visit: VisitInput) -> None:
        self._visit = visit
        self._state = VisitState(
            visit_id=visit.visit_id,
            stage=VisitStage.AWAITING_PAYMENT,
            patient_id=visit.patient_id,
            doctor_id=visit.doctor_id,
            slot_id=visit.slot_id,
            starts_at=visit.starts_at,
            fee_fen=visit.fee_fen,
        )
        self._bill_opened = False
        self._cancel: CancelVisit | None = None
        self._accepted = False
        self._abort: AbortVisit | None = None
        self._finished = False
        self._lock = asyncio.Lock()

    # --- the flow ---

    @workflow.run
    async def run(self, visit: VisitInput) -> VisitState:
        await db(VisitActivities.record_visit, visit, self._state)
        bill = BillInput(
            bill_id=f"{visit.visit_id}-reg",
            kind=BillKind.REGISTRATION,
            ref_id=visit.visit_id,
            patient_id=visit.patient_id,
            amount_fen=visit.fee_fen,
            description="在线复诊挂号费",
            channel=visit.channel,
            pay_window_s=visit.pay_window_s,
        )
        self._state.bill_id = bill.bill_id
        bill_handle = await workflow.start_child_workflow(BillWorkflow.run, bill, id=bill_workflow_id(bill.bill_id))
        # The patient may cancel while the bill is open: ask the bill to close instead of waiting out the window.
        cancel_watch = asyncio.ensure_future(self._forward_cancel(bill_handle))
        paid: BillState = await bill_handle
        cancel_watch.cancel()

        if paid.status is not BillStatus.PAID:
            await self._end(VisitStage.CANCELLED, release_slot=True)
            return await self._result()

        await db(VisitActivities.confirm_slot, visit)
        registration: HisRegistration = await call(VisitActivities.register_with_his, visit)
        self._state.his_registration_no = registration.his_registration_no
        self._state.queue_no = registration.queue_no
        self._state.stage = VisitStage.WAITING_DOCTOR
        await db(VisitActivities.record_visit, visit, self._state)
        when = local(visit.starts_at)
        await notify(
            "booked", f"patient:{visit.patient_id}", "visit_booked", time=when, queue_no=str(registration.queue_no)
        )
        await notify("assigned", f"doctor:{visit.doctor_id}", "visit_assigned", time=when)

        if self._cancel is not None:
            await self._refund_and_end(VisitStage.CANCELLED, self._cancel.reason, self._cancel.patient_id)
            return await self._result()

        await self._wait_for_doctor(visit)
        if self._abort is not None:
            await self._refund_and_end(VisitStage.ABORTED, self._abort.reason, self._abort.doctor_id)
            return await self._result()
        if self._cancel is not None:
            await self._refund_and_end(VisitStage.CANCELLED, self._cancel.reason, self._cancel.patient_id)
            return await self._result()

        await notify("accepted", f"patient:{visit.patient_id}", "visit_accepted")
        await workflow.wait_condition(lambda: self._finished or self._abort is not None)
        if self._abort is not None:
            await self._refund_and_end(VisitStage.ABORTED, self._abort.reason, self._abort.doctor_id)
            return await self._result()
        self._state.stage = VisitStage.FINISHED
        await db(VisitActivities.record_visit, visit, self._state)
        return await self._result()

    async def _forward_cancel(self, bill_handle: workflow.ChildWorkflowHandle) -> None:
        await workflow.wait_condition(lambda: self._cancel is not None)
        await bill_handle.signal(BillWorkflow.cancel)

    async def _wait_for_doctor(self, visit: VisitInput) -> None:
        """Remind both sides shortly before the start; abort if the doctor has not accepted by the deadline."""
        decided = lambda: self._accepted or self._abort is not None or self._cancel is not None  # noqa: E731
        now = workflow.now()
        remind_at = visit.starts_at - REMINDER_LEAD
        if remind_at > now:
            try:
                await workflow.wait_condition(decided, timeout=remind_at - now)
            except TimeoutError:
                when = local(visit.starts_at, "%H:%M")
                await notify("reminder-patient", f"patient:{visit.patient_id}", "visit_reminder", time=when)
                await notify("reminder-doctor", f"doctor:{visit.doctor_id}", "visit_reminder", time=when)
        deadline = max(workflow.now(), visit.starts_at) + timedelta(seconds=visit.accept_window_s)
        try:
            await workflow.wait_condition(decided, timeout=deadline - workflow.now())
        except TimeoutError:
            self._abort = AbortVisit(doctor_id=visit.doctor_id, reason="医生未在规定时间内接诊", advice="")

    async def _refund_and_end(self, stage: VisitStage, reason: str, requested_by: str) -> None:
        visit = self._visit
        self._state.abort_reason = reason
        refund = RefundInput(
            refund_id=f"{self._state.bill_id}-r1",
            bill_id=self._state.bill_id or "",
            patient_id=visit.patient_id,
            channel=visit.channel,
            amount_fen=visit.fee_fen,
            reason=reason,
            requested_by=requested_by,
        )
        result: RefundResult = await workflow.execute_child_workflow(
            RefundWorkflow.run, refund, id=refund_workflow_id(refund.bill_id, 1)
        )
        self._state.refund_id = result.refund_id
        if self._state.his_registration_no:
            await call(VisitActivities.cancel_his_registration, visit.visit_id, self._state.his_registration_no)
        if stage is VisitStage.ABORTED and self._abort is not None:
            await notify(
                "aborted", f"patient:{visit.patient_id}", "visit_aborted", reason=reason, advice=self._abort.advice
            )
        else:
            await notify("cancelled", f"patient:{visit.patient_id}", "visit_cancelled", reason=reason)
        # A paid slot is not handed out again: the session time is the doctor's, and HIS has the registration.
        await self._end(stage, release_slot=False)

    async def _end(self, stage: VisitStage, *, release_slot: bool) -> None:
        if release_slot:
            await db(VisitActivities.release_slot, self._visit)
            if self._cancel is not None:
                await notify(
                    "cancelled", f"patient:{self._visit.patient_id}", "visit_cancelled", reason=self._cancel.reason
                )
        self._state.stage = stage
        await db(VisitActivities.record_visit, self._visit, self._state)

    async def _result(self) -> VisitState:
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    # --- messages ---

    @workflow.signal(name=BILL_OPENED_SIGNAL)
    def bill_opened(self, bill: BillState) -> None:
        self._state.pay_deadline = bill.pay_deadline
        self._state.pay_url = bill.pay_url
        self._bill_opened = True

    @workflow.update
    async def book(self, request: BookingRequest) -> VisitState:
        """Answer the booking with the bill to pay (Update-with-Start waits for it)."""
        await workflow.wait_condition(lambda: self._bill_opened or self._state.stage is not VisitStage.AWAITING_PAYMENT)
        return self._state

    @book.validator
    def _validate_book(self, request: BookingRequest) -> None:
        if request.patient_id != self._visit.patient_id:
            raise ApplicationError("该号源已被他人预约", type="SLOT_TAKEN")

    @workflow.update
    async def cancel(self, request: CancelVisit) -> VisitState:
        self._cancel = request
        await workflow.wait_condition(self._ended)
        return self._state

    @cancel.validator
    def _validate_cancel(self, request: CancelVisit) -> None:
        if request.patient_id != self._visit.patient_id:
            raise ApplicationError("无权操作该挂号", type="FORBIDDEN")
        if self._state.stage not in (VisitStage.AWAITING_PAYMENT, VisitStage.WAITING_DOCTOR) or self._accepted:
            raise ApplicationError("医生已接诊或就诊已结束，不能取消", type="VISIT_NOT_CANCELLABLE")
        if self._cancel is not None:
            raise ApplicationError("已申请取消", type="VISIT_NOT_CANCELLABLE")

    @workflow.update
    async def accept(self, request: AcceptVisit) -> VisitState:
        self._accepted = True
        self._state.stage = VisitStage.IN_CONSULT
        async with self._lock:
            await db(VisitActivities.record_visit, self._visit, self._state)
        return self._state

    @accept.validator
    def _validate_accept(self, request: AcceptVisit) -> None:
        self._require_doctor(request.doctor_id)
        if self._state.stage is not VisitStage.WAITING_DOCTOR or self._cancel is not None or self._abort is not None:
            raise ApplicationError("当前状态不能接诊", type="VISIT_NOT_WAITING")

    @workflow.update
    async def abort(self, request: AbortVisit) -> VisitState:
        self._abort = request
        await workflow.wait_condition(self._ended)
        return self._state

    @abort.validator
    def _validate_abort(self, request: AbortVisit) -> None:
        self._require_doctor(request.doctor_id)
        if self._state.stage not in _OPEN_STAGES or self._abort is not None or self._finished:
            raise ApplicationError("当前状态不能中止复诊", type="VISIT_NOT_OPEN")

    @workflow.update
    async def write_record(self, request: WriteRecord) -> VisitState:
        async with self._lock:
            await db(VisitActivities.save_medical_record, self._visit, request)
        self._state.record_written = True
        return self._state

    @write_record.validator
    def _validate_write_record(self, request: WriteRecord) -> None:
        self._require_in_consult(request.doctor_id)

    @workflow.update
    async def prescribe(self, request: Prescribe) -> str:
        visit = self._visit
        rx = PrescriptionInput(
            prescription_id=request.prescription_id,
            visit_id=visit.visit_id,
            patient_id=visit.patient_id,
            doctor_id=visit.doctor_id,
            draft=request.draft,
            channel=visit.channel,
            review_sla_s=visit.review_sla_s,
            pay_window_s=visit.rx_pay_window_s,
            delivery_sla_s=visit.delivery_sla_s,
        )
        self._state.prescription_ids.append(request.prescription_id)
        # Listed before the update answers, so the doctor can open it at once; its own flow keeps the row current.
        draft_state = PrescriptionState(prescription_id=rx.prescription_id, visit_id=rx.visit_id, stage=RxStage.DRAFT)
        async with self._lock:
            await db(PrescriptionActivities.record_prescription, rx, draft_state, rx.draft)
        # The prescription lives on (review, payment, delivery) after the consult closes.
        await workflow.start_child_workflow(
            PrescriptionWorkflow.run,
            rx,
            id=prescription_workflow_id(request.prescription_id),
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        return request.prescription_id

    @prescribe.validator
    def _validate_prescribe(self, request: Prescribe) -> None:
        self._require_in_consult(request.doctor_id)
        if request.prescription_id in self._state.prescription_ids:
            raise ApplicationError("处方编号重复", type="DUPLICATE_PRESCRIPTION")

    @workflow.update
    async def finish(self, request: FinishVisit) -> VisitState:
        self._finished = True
        await workflow.wait_condition(self._ended)
        return self._state

    @finish.validator
    def _validate_finish(self, request: FinishVisit) -> None:
        self._require_in_consult(request.doctor_id)
        if not self._state.record_written:
            raise ApplicationError("请先书写病历再结束复诊", type="RECORD_REQUIRED")

    def _ended(self) -> bool:
        return self._state.stage in _END_STAGES

    def _require_doctor(self, doctor_id: str) -> None:
        if doctor_id != self._visit.doctor_id:
            raise ApplicationError("不是本次复诊的接诊医生", type="FORBIDDEN")

    def _require_in_consult(self, doctor_id: str) -> None:
        self._require_doctor(doctor_id)
        if self._state.stage is not VisitStage.IN_CONSULT or self._abort is not None or self._finished:
            raise ApplicationError("复诊未在进行中", type="VISIT_NOT_IN_CONSULT")

    @workflow.query
    def state(self) -> VisitState:
        return self._state

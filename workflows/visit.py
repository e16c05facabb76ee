"""Visit (8.1.3, 8.2): from a held slot to a finished online follow-up consult.

Started by booking through Update-with-Start (`book`), after PostgreSQL already gave the slot to this visit.
  awaiting_payment ─paid→ waiting_doctor ─accept→ in_consult ─finish→ finished
        │ unpaid/cancel          │ abort, accept timeout, cancel, leave   │ abort
        ▼                         ▼                                     ▼
    cancelled (slot released)   aborted / cancelled (fee refunded, HIS registration cancelled)
                                no_show (not checked in by the end of the slot; the fee is kept, 8.6.8)
A schedule change arrives as a signal (`schedule_changed`): a substitution hands the visit to the substitute; a leave
cancels an unpaid booking, and offers a paid one rebooking to another slot of the same disease or a full refund,
refunding by itself when the patient does not choose in time. The change flow hears back how each visit ended up.
Prescriptions written in the consult run as their own workflows and outlive the visit. In consult, the doctor may
invite other doctors (会诊, 8.2.3.5): each joins the chat, signs an opinion and may prescribe. A child under six gets
no prescription until the guardian and the accompanying physician are recorded (8.1.2.1 c).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.adapters.his import HisRegistration
    from activities.consultations import ConsultationActivities
    from activities.exams import ExamActivities
    from activities.prescriptions import PrescriptionActivities
    from activities.records import RecordActivities
    from activities.visits import VisitActivities
    from models.billing import BillInput, BillKind, BillState, BillStatus, RefundInput, RefundResult
    from models.consultation import MAX_CONSULTANTS, GiveOpinion, InviteConsultant
    from models.exam import ExamOrderInput, ExamOrderState, OrderExams, ordered_state
    from models.prescription import PrescriptionInput, PrescriptionState, RxStage
    from models.record import SignRecord
    from models.schedule_change import ChangeKind, ScheduleChangeNotice, VisitChangeProgress, VisitOutcome
    from models.visit import (
        AbortVisit,
        AcceptVisit,
        BookingRequest,
        CancelVisit,
        CheckIn,
        FinishVisit,
        LeaveChoice,
        LeaveOffer,
        Prescribe,
        ResolveLeave,
        SlotMove,
        SlotMoveRequest,
        VisitInput,
        VisitStage,
        VisitState,
        WriteRecord,
    )
    from workflows.bill import BILL_OPENED_SIGNAL, BillWorkflow, bill_workflow_id
    from workflows.exam import ExamOrderWorkflow, exam_workflow_id
    from workflows.prescription import PrescriptionWorkflow, prescription_workflow_id
    from workflows.refund import RefundWorkflow, refund_workflow_id
    from workflows.steps import Notices, call, db, local, refusal, yuan


REMINDER_LEAD = timedelta(minutes=10)
# Prescribing first checks that a child under six has their guardian recorded; earlier flows did not.
GUARDIAN_CHECK = "guardian-check-at-prescribe"
# Patients check in from this long before their slot starts until it ends.
CHECK_IN_OPENS = timedelta(minutes=30)
# Sent to the ScheduleChange flow named in a change notice, with how this visit came out of the change.
CHANGE_PROGRESS_SIGNAL = "visit_change_progress"
_OPEN_STAGES = (VisitStage.WAITING_DOCTOR, VisitStage.IN_CONSULT)
_END_STAGES = (VisitStage.FINISHED, VisitStage.CANCELLED, VisitStage.ABORTED, VisitStage.NO_SHOW)


def visit_workflow_id(visit_id: str) -> str:
    return f"visit-{visit_id}"


def registration_bill_id(visit_id: str) -> str:
    """Known before the flow opens the bill, so the booking answer can name it."""
    return f"{visit_id}-reg"


def booked_state(visit: VisitInput) -> VisitState:
    """A visit as booked: its slot held, its registration bill about to open."""
    return VisitState(
        visit_id=visit.visit_id,
        stage=VisitStage.AWAITING_PAYMENT,
        patient_id=visit.patient_id,
        doctor_id=visit.doctor_id,
        slot_id=visit.slot_id,
        starts_at=visit.starts_at,
        ends_at=visit.ends_at,
        fee_fen=visit.fee_fen,
        bill_id=registration_bill_id(visit.visit_id),
    )


async def _wait_until(condition: Callable[[], bool], moment: datetime) -> bool:
    """Wait for `condition` until `moment`; True when it holds. A moment already past only checks it."""
    remaining = moment - workflow.now()
    if remaining <= timedelta(0):
        return condition()
    try:
        await workflow.wait_condition(condition, timeout=remaining)
    except TimeoutError:
        return False
    return True


@workflow.defn(name="Visit")
class VisitWorkflow:
    @workflow.init
    def __init__(self, visit: VisitInput) -> None:
        self._notices = Notices()
        self._visit = visit
        # The terms in force: a substitution changes the doctor; a rebooking the slot, times, doctor and fee.
        self._terms = visit
        self._state = booked_state(visit)
        self._bill_opened = False
        self._paid = False
        self._cancel: CancelVisit | None = None
        self._accepted = False
        self._abort: AbortVisit | None = None
        self._finished = False
        self._no_show = False
        # Check-in closes here: the end of the slot, or a slot's length after paying for one that was about to start.
        self._show_by = visit.ends_at
        # A leave waiting for the patient's choice, the choice once made, and whether a rebooking is being applied.
        self._leave: ScheduleChangeNotice | None = None
        self._choice: ResolveLeave | None = None
        self._choosing = False
        # The change flow still waiting to hear how this visit ended.
        self._owed: ScheduleChangeNotice | None = None
        self._changes_seen: list[str] = []
        self._registrations = 0
        self._refunds = 0
        self._lock = asyncio.Lock()

    # --- the flow ---

    @workflow.run
    async def run(self, visit: VisitInput) -> VisitState:
        await db(VisitActivities.record_visit, self._terms, self._state)
        bill = BillInput(
            bill_id=registration_bill_id(visit.visit_id),
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
            if self._cancel is not None:
                self._notices.send("cancelled", self._patient, "visit_cancelled", reason=self._cancel.reason)
            return await self._result()

        self._paid = True
        async with self._lock:
            # Flows from before the activity returned the doctor's name got nothing back from it.
            doctor: str | None = await db(VisitActivities.confirm_slot, self._terms)
            await self._register_with_his()
            self._state.stage = VisitStage.WAITING_DOCTOR
            await db(VisitActivities.record_visit, self._terms, self._state)
        when = local(self._terms.starts_at)
        queue_no = str(self._state.queue_no)
        self._notices.send("booked", self._patient, "visit_booked", doctor=doctor or "", time=when, queue_no=queue_no)
        self._notices.send("assigned", f"doctor:{self._terms.doctor_id}", "visit_assigned", time=when)

        if not await self._until_accepted():
            return await self._result()

        self._notices.send("accepted", self._patient, "visit_accepted")
        await workflow.wait_condition(lambda: self._finished or self._abort is not None)
        if self._abort is not None:
            await self._end_aborted(self._abort)
            return await self._result()
        self._state.stage = VisitStage.FINISHED
        await db(VisitActivities.record_visit, self._terms, self._state)
        return await self._result()

    async def _forward_cancel(self, bill_handle: workflow.ChildWorkflowHandle) -> None:
        await workflow.wait_condition(lambda: self._cancel is not None)
        await bill_handle.signal(BillWorkflow.cancel)

    async def _until_accepted(self) -> bool:
        """Wait for the doctor, settling cancels and leaves on the way; False when the visit ended instead."""
        while True:
            if self._cancel is not None:
                reason = self._cancel.reason
                await self._refund_and_end(VisitStage.CANCELLED, reason, self._cancel.patient_id)
                self._notices.send("cancelled", self._patient, "visit_cancelled", reason=reason)
                return False
            if self._leave is not None:
                if not await self._settle_leave(self._leave):
                    return False
                continue
            await self._wait_for_doctor()
            if self._abort is not None:
                await self._end_aborted(self._abort)
                return False
            if self._no_show:
                await db(VisitActivities.record_no_show, self._terms)
                await self._end(VisitStage.NO_SHOW, release_slot=False)
                self._notices.send("no-show", self._patient, "visit_no_show", time=local(self._terms.starts_at))
                return False
            if self._accepted:
                return True

    async def _wait_for_doctor(self) -> None:
        """Remind both sides shortly before the start, then wait for the doctor. Still unaccepted at the end of the
        slot without the patient having checked in, the patient did not show; checked in and unaccepted by the accept
        deadline, the doctor did not come, and the visit is aborted with a refund."""
        terms = self._terms
        remind_at = terms.starts_at - REMINDER_LEAD
        if remind_at > workflow.now() and not await _wait_until(self._decided, remind_at):
            when = local(terms.starts_at, "%H:%M")
            self._notices.send(f"reminder-patient:{terms.slot_id}", self._patient, "visit_reminder", time=when)
            doctor = f"doctor:{self._terms.doctor_id}"
            self._notices.send(f"reminder-doctor:{terms.slot_id}", doctor, "visit_reminder", time=when)
        now = workflow.now()
        accept_by = max(now, terms.starts_at) + timedelta(seconds=terms.accept_window_s)
        self._show_by = max(terms.ends_at, now + (terms.ends_at - terms.starts_at))
        while not self._decided():
            checked_in = self._state.checked_in_at is not None
            if await _wait_until(
                partial(self._waiting_changed, checked_in), accept_by if checked_in else self._show_by
            ):
                continue
            if checked_in:
                self._abort = AbortVisit(doctor_id=self._terms.doctor_id, reason="医生未在规定时间内接诊", advice="")
            else:
                self._no_show = True
            return

    def _decided(self) -> bool:
        return self._accepted or self._abort is not None or self._cancel is not None or self._leave is not None

    def _waiting_changed(self, checked_in: bool) -> bool:
        return self._decided() or (self._state.checked_in_at is not None) != checked_in

    async def _settle_leave(self, notice: ScheduleChangeNotice) -> bool:
        """Wait for the patient's choice until the offer's deadline; True when the patient rebooked (the
        `resolve_leave` update moved the visit) and the visit goes on, else the fee is refunded in full."""
        if not await _wait_until(lambda: self._choice is not None and not self._choosing, notice.choice_deadline):
            await workflow.wait_condition(lambda: not self._choosing)  # a rebooking under way finishes first
        choice, self._choice, self._leave = self._choice, None, None
        self._state.leave_offer = None
        if choice is not None and choice.choice is LeaveChoice.REBOOK:
            return True
        how = "您选择了退款" if choice is not None else "您未在规定时间内选择，已自动退款"
        amount = yuan(self._refundable())
        requested_by = choice.patient_id if choice is not None else "system"
        await self._refund_and_end(
            VisitStage.CANCELLED, f"{notice.doctor_name}医生停诊，{how}", requested_by, release_slot=True
        )
        self._notices.send(
            f"leave-refunded:{notice.change_id}",
            self._patient,
            "visit_leave_refunded",
            doctor=notice.doctor_name,
            time=local(self._terms.starts_at),
            how=how,
            amount=amount,
        )
        return False

    async def _rebook(self, notice: ScheduleChangeNotice, request: ResolveLeave, slot_id: str) -> None:
        """Move the paid registration to the chosen slot (PostgreSQL decides, as at booking), re-register it with
        HIS, and refund the difference when the new slot costs less."""
        paid_fee = self._terms.fee_fen
        async with self._lock:
            move = SlotMoveRequest(
                visit_id=self._visit.visit_id,
                patient_id=self._visit.patient_id,
                from_slot_id=self._terms.slot_id,
                to_slot_id=slot_id,
                disease_code=self._terms.disease_code,
                max_fee_fen=paid_fee,
            )
            try:
                moved: SlotMove = await db(VisitActivities.move_to_slot, move)
            except (ActivityError, ApplicationError) as failure:
                raise refusal(failure, "REBOOK_FAILED", "改约未能完成，请稍后重试") from None
            self._change_terms(
                slot_id=moved.slot_id,
                doctor_id=moved.doctor_id,
                starts_at=moved.starts_at,
                ends_at=moved.ends_at,
                fee_fen=moved.fee_fen,
            )
            self._state.checked_in_at = None
            self._state.leave_offer = None
            self._show_by = moved.ends_at
            await self._register_again()
            await db(VisitActivities.record_visit, self._terms, self._state)
        self._choice = request
        difference = paid_fee - moved.fee_fen
        if difference > 0:
            await self._refund(difference, "停诊改约至挂号费较低的号源，退还差额", request.patient_id)
        when = local(moved.starts_at)
        self._notices.send(
            f"rebooked:{notice.change_id}",
            self._patient,
            "visit_rebooked",
            doctor=moved.doctor_name,
            time=when,
            queue_no=str(self._state.queue_no),
            difference=f"原挂号费与新号源的差额{yuan(difference)}元将原路退回。" if difference > 0 else "",
        )
        self._notices.send(f"assigned:{notice.change_id}", f"doctor:{moved.doctor_id}", "visit_assigned", time=when)
        self._owed = None
        await self._report(notice, VisitOutcome.REBOOKED, moved.slot_id)

    async def _substitute(self, notice: ScheduleChangeNotice, substitute_id: str) -> None:
        before = self._terms.doctor_id
        async with self._lock:
            self._change_terms(doctor_id=substitute_id)
            await self._register_again()
            await db(VisitActivities.record_visit, self._terms, self._state)
        when = local(self._terms.starts_at)
        substitute = notice.substitute_name or ""
        self._notices.send(
            f"substituted:{notice.change_id}",
            self._patient,
            "visit_substituted",
            doctor=notice.doctor_name,
            substitute=substitute,
            reason=notice.reason,
            time=when,
        )
        self._notices.send(
            f"handed-over:{notice.change_id}", f"doctor:{before}", "visit_handed_over", time=when, substitute=substitute
        )
        if self._paid:  # an unpaid booking tells its doctor once paid, and that is the substitute now
            self._notices.send(f"assigned:{notice.change_id}", f"doctor:{substitute_id}", "visit_assigned", time=when)
        await self._report(notice, VisitOutcome.SUBSTITUTED)

    def _change_terms(self, **changes: object) -> None:
        self._terms = self._terms.model_copy(update=changes)
        for name, value in changes.items():
            setattr(self._state, name, value)

    async def _register_with_his(self) -> None:
        registration: HisRegistration = await call(VisitActivities.register_with_his, self._terms, self._registrations)
        self._registrations += 1
        self._state.his_registration_no = registration.his_registration_no
        self._state.queue_no = registration.queue_no

    async def _register_again(self) -> None:
        """After a change of doctor or slot: register the new terms, then cancel the old registration. A visit not
        registered yet is registered with the new terms once paid."""
        old = self._state.his_registration_no
        if old is None:
            return
        await self._register_with_his()
        await call(VisitActivities.cancel_his_registration, self._visit.visit_id, old)

    def _refundable(self) -> int:
        return self._visit.fee_fen - self._state.refunded_fen

    async def _refund(self, amount_fen: int, reason: str, requested_by: str) -> None:
        self._refunds += 1
        bill_id = self._state.bill_id or ""
        refund = RefundInput(
            refund_id=f"{bill_id}-r{self._refunds}",
            bill_id=bill_id,
            patient_id=self._visit.patient_id,
            channel=self._visit.channel,
            amount_fen=amount_fen,
            reason=reason,
            requested_by=requested_by,
        )
        result: RefundResult = await workflow.execute_child_workflow(
            RefundWorkflow.run, refund, id=refund_workflow_id(bill_id, self._refunds)
        )
        self._state.refund_id = result.refund_id
        self._state.refunded_fen += amount_fen

    async def _end_aborted(self, abort: AbortVisit) -> None:
        self._state.abort_advice = abort.advice or None
        await self._refund_and_end(VisitStage.ABORTED, abort.reason, abort.doctor_id)
        self._notices.send("aborted", self._patient, "visit_aborted", reason=abort.reason, advice=abort.advice)

    async def _refund_and_end(
        self, stage: VisitStage, reason: str, requested_by: str, *, release_slot: bool = False
    ) -> None:
        """Refund what is left of the fee and cancel the HIS registration. A paid slot is not handed out again (the
        session time is the doctor's) unless asked: a slot of a cancelled session is then closed."""
        self._state.abort_reason = reason
        if self._refundable() > 0:
            await self._refund(self._refundable(), reason, requested_by)
        if self._state.his_registration_no:
            await call(VisitActivities.cancel_his_registration, self._visit.visit_id, self._state.his_registration_no)
        await self._end(stage, release_slot=release_slot)

    async def _end(self, stage: VisitStage, *, release_slot: bool) -> None:
        if release_slot:
            await db(VisitActivities.release_slot, self._terms)
        self._state.stage = stage
        self._state.leave_offer = None
        await db(VisitActivities.record_visit, self._terms, self._state)
        if self._owed is not None:
            outcome = VisitOutcome.REFUNDED if self._state.refunded_fen else VisitOutcome.CANCELLED
            await self._report(self._owed, outcome, self._state.refund_id or "")
            self._owed = None

    async def _report(self, notice: ScheduleChangeNotice, outcome: VisitOutcome, detail: str = "") -> None:
        progress = VisitChangeProgress(
            change_id=notice.change_id, visit_id=self._visit.visit_id, outcome=outcome, detail=detail
        )
        try:
            await workflow.get_external_workflow_handle(notice.reply_to).signal(CHANGE_PROGRESS_SIGNAL, progress)
        except ApplicationError:
            # The change flow is gone (an operator ended it); the visit's own outcome stands regardless.
            workflow.logger.warning("schedule change flow not reachable", extra={"change_id": notice.change_id})

    async def _result(self) -> VisitState:
        await self._notices.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    @property
    def _patient(self) -> str:
        return f"patient:{self._visit.patient_id}"

    # --- messages ---

    @workflow.signal(name=BILL_OPENED_SIGNAL)
    def bill_opened(self, bill: BillState) -> None:
        self._state.pay_deadline = bill.pay_deadline
        self._state.pay_url = bill.pay_url
        self._bill_opened = True

    @workflow.signal
    async def schedule_changed(self, notice: ScheduleChangeNotice) -> None:
        """A leave or substitution of the schedule this visit's slot belongs to."""
        if notice.change_id in self._changes_seen:
            return
        self._changes_seen.append(notice.change_id)
        if (
            notice.slot_id != self._terms.slot_id
            or self._accepted
            or self._no_show
            or self._abort is not None
            or self._ended()
        ):
            await self._report(notice, VisitOutcome.NOT_AFFECTED)
            return
        if notice.kind is ChangeKind.SUBSTITUTION and notice.substitute_doctor_id:
            await self._substitute(notice, notice.substitute_doctor_id)
            return
        self._owed = notice
        if self._cancel is not None:
            return  # already being cancelled (and refunded if paid); the change flow hears of it at the end
        if not self._paid:
            self._cancel = CancelVisit(patient_id=self._visit.patient_id, reason=f"{notice.doctor_name}医生停诊")
            return
        # Paid: the main flow waits for the patient's choice (`resolve_leave`) until the deadline.
        self._leave = notice
        self._state.leave_offer = LeaveOffer(
            change_id=notice.change_id,
            reason=notice.reason,
            doctor_name=notice.doctor_name,
            disease_code=self._terms.disease_code,
            max_fee_fen=self._terms.fee_fen,
            refund_fen=self._refundable(),
            deadline=notice.choice_deadline,
        )
        self._notices.send(
            f"leave-offer:{notice.change_id}",
            self._patient,
            "visit_leave_offer",
            doctor=notice.doctor_name,
            reason=notice.reason,
            time=local(self._terms.starts_at),
            deadline=local(notice.choice_deadline),
            amount=yuan(self._refundable()),
        )
        await self._report(notice, VisitOutcome.OFFERED)

    @workflow.update
    async def book(self, request: BookingRequest) -> VisitState:
        """The booked visit with its bill to pay, once the bill is open (`GET /visits/{id}/payment` waits on it)."""
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
        self._require_patient(request.patient_id)
        self._refuse_during_leave()
        if self._state.stage not in (VisitStage.AWAITING_PAYMENT, VisitStage.WAITING_DOCTOR) or self._accepted:
            raise ApplicationError("医生已接诊或就诊已结束，不能取消", type="VISIT_NOT_CANCELLABLE")
        if self._cancel is not None:
            raise ApplicationError("已申请取消", type="VISIT_NOT_CANCELLABLE")

    @workflow.update
    async def check_in(self, request: CheckIn) -> VisitState:
        """The patient is present (报到). Checking in again changes nothing."""
        if self._state.checked_in_at is None:
            self._state.checked_in_at = workflow.now()
            when = local(self._terms.starts_at, "%H:%M")
            self._notices.send(
                f"checked-in:{self._terms.slot_id}", f"doctor:{self._terms.doctor_id}", "visit_checked_in", time=when
            )
        return self._state

    @check_in.validator
    def _validate_check_in(self, request: CheckIn) -> None:
        self._require_patient(request.patient_id)
        self._refuse_during_leave()
        if self._state.stage is not VisitStage.WAITING_DOCTOR or self._decided() or self._no_show:
            raise ApplicationError("当前状态不能报到", type="VISIT_NOT_WAITING")
        now = workflow.now()
        opens = self._terms.starts_at - CHECK_IN_OPENS
        if now < opens:
            raise ApplicationError(f"请于 {local(opens)} 后报到（就诊开始前30分钟起）", type="CHECK_IN_NOT_OPEN")
        if now >= self._show_by:
            raise ApplicationError("就诊时段已结束，不能再报到", type="CHECK_IN_CLOSED")

    @workflow.update
    async def resolve_leave(self, request: ResolveLeave) -> VisitState:
        """The patient's answer to a leave: a full refund, or rebooking to another slot of the same disease."""
        if request.choice is LeaveChoice.REFUND:
            self._choice = request
            await workflow.wait_condition(self._ended)
            return self._state
        notice, slot_id = self._leave, request.slot_id
        if notice is None or slot_id is None:  # the validator refuses both; this keeps the types honest
            raise ApplicationError("没有待选择的停诊处理方式", type="NO_LEAVE_OFFER")
        self._choosing = True
        try:
            await self._rebook(notice, request, slot_id)
        finally:
            self._choosing = False
        return self._state

    @resolve_leave.validator
    def _validate_resolve_leave(self, request: ResolveLeave) -> None:
        self._require_patient(request.patient_id)
        offer = self._state.leave_offer
        if self._leave is None or offer is None:
            raise ApplicationError("没有待选择的停诊处理方式", type="NO_LEAVE_OFFER")
        if self._choosing or self._choice is not None:
            raise ApplicationError("您的选择正在处理中", type="LEAVE_CHOICE_IN_PROGRESS")
        if workflow.now() >= offer.deadline:
            raise ApplicationError("已超过选择期限，挂号费将自动全额退款", type="LEAVE_OFFER_EXPIRED")
        if request.choice is LeaveChoice.REBOOK and not request.slot_id:
            raise ApplicationError("改约请选择新的号源", type="REBOOK_SLOT_REQUIRED")

    @workflow.update
    async def accept(self, request: AcceptVisit) -> VisitState:
        self._accepted = True
        self._state.stage = VisitStage.IN_CONSULT
        async with self._lock:
            await db(VisitActivities.record_visit, self._terms, self._state)
        return self._state

    @accept.validator
    def _validate_accept(self, request: AcceptVisit) -> None:
        self._require_doctor(request.doctor_id)
        self._refuse_during_leave()
        if self._state.stage is not VisitStage.WAITING_DOCTOR or self._decided() or self._no_show:
            raise ApplicationError("当前状态不能接诊", type="VISIT_NOT_WAITING")

    @workflow.update
    async def abort(self, request: AbortVisit) -> VisitState:
        self._abort = request
        await workflow.wait_condition(self._ended)
        return self._state

    @abort.validator
    def _validate_abort(self, request: AbortVisit) -> None:
        self._require_doctor(request.doctor_id)
        self._refuse_during_leave()
        if self._state.stage not in _OPEN_STAGES or self._abort is not None or self._finished or self._no_show:
            raise ApplicationError("当前状态不能中止复诊", type="VISIT_NOT_OPEN")

    @workflow.update
    async def write_record(self, request: WriteRecord) -> VisitState:
        async with self._lock:
            await db(RecordActivities.save_medical_record, self._terms, request)
        self._state.record_written = True
        return self._state

    @write_record.validator
    def _validate_write_record(self, request: WriteRecord) -> None:
        self._require_in_consult(request.doctor_id)
        if self._state.record_signed:
            raise ApplicationError("病历已签名，不能再修改；如需更正请添加补充记录", type="RECORD_SIGNED")

    @workflow.update
    async def sign_record(self, request: SignRecord) -> VisitState:
        """The doctor signs the record (SM2 with a trusted timestamp); it is locked from then on."""
        async with self._lock:
            await call(RecordActivities.sign_medical_record, self._terms, request.doctor_id)
        self._state.record_signed = True
        return self._state

    @sign_record.validator
    def _validate_sign_record(self, request: SignRecord) -> None:
        self._require_in_consult(request.doctor_id)
        if not self._state.record_written:
            raise ApplicationError("请先书写病历再签名", type="RECORD_REQUIRED")
        if self._state.record_signed:
            raise ApplicationError("病历已签名", type="RECORD_SIGNED")

    @workflow.update
    async def prescribe(self, request: Prescribe) -> str:
        visit = self._terms
        if workflow.patched(GUARDIAN_CHECK):
            try:
                await db(VisitActivities.require_guardian, visit)
            except (ActivityError, ApplicationError) as failure:
                raise refusal(failure, "GUARDIAN_CHECK_FAILED", "未能核对患儿监护人信息，请稍后重试") from None
        rx = PrescriptionInput(
            prescription_id=request.prescription_id,
            visit_id=visit.visit_id,
            patient_id=visit.patient_id,
            # The visit's doctor, or an invited consultant: whoever writes it signs it.
            doctor_id=request.doctor_id,
            draft=request.draft,
            channel=visit.channel,
            review_sla_s=visit.review_sla_s,
            pay_window_s=visit.rx_pay_window_s,
            delivery_sla_s=visit.delivery_sla_s,
            renewed_from=request.renewed_from,
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
        if request.doctor_id not in self._state.consultants:
            self._require_doctor(request.doctor_id)
        self._require_open_consult()
        if request.prescription_id in self._state.prescription_ids:
            raise ApplicationError("处方编号重复", type="DUPLICATE_PRESCRIPTION")

    @workflow.update
    async def order_exams(self, request: OrderExams) -> ExamOrderState:
        """The visit's doctor orders exams (检查/检验); the order is paid, booked and refunded in its own flow, which
        outlives the consult."""
        visit = self._terms
        order = ExamOrderInput(
            order_id=request.order_id,
            visit_id=visit.visit_id,
            patient_id=visit.patient_id,
            doctor_id=request.doctor_id,
            lines=request.lines,
            note=request.note,
            channel=visit.channel,
            windows=request.windows,
        )
        self._state.exam_order_ids.append(order.order_id)
        ordered = ordered_state(order)
        # Listed before the update answers, so the patient's list shows it at once; its own flow keeps it current.
        async with self._lock:
            await db(ExamActivities.record_exam_order, order, ordered)
        await workflow.start_child_workflow(
            ExamOrderWorkflow.run,
            order,
            id=exam_workflow_id(order.order_id),
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        return ordered

    @order_exams.validator
    def _validate_order_exams(self, request: OrderExams) -> None:
        self._require_in_consult(request.doctor_id)
        if request.order_id in self._state.exam_order_ids:
            raise ApplicationError("检查单编号重复", type="DUPLICATE_EXAM_ORDER")

    @workflow.update
    async def invite_consultant(self, request: InviteConsultant) -> VisitState:
        """The visit's doctor invites another doctor into the consult (会诊); the invitee is told at once."""
        async with self._lock:
            try:
                await db(ConsultationActivities.record_invitation, self._terms, request)
            except (ActivityError, ApplicationError) as failure:
                raise refusal(failure, "INVITE_FAILED", "会诊邀请未能完成，请稍后重试") from None
        if request.consultant_id not in self._state.consultants:
            self._state.consultants.append(request.consultant_id)
            self._notices.send(
                f"consult-invited:{request.consultant_id}",
                f"doctor:{request.consultant_id}",
                "consult_invited",
                time=local(self._terms.starts_at),
                reason=request.reason,
            )
        return self._state

    @invite_consultant.validator
    def _validate_invite_consultant(self, request: InviteConsultant) -> None:
        self._require_in_consult(request.doctor_id)
        if request.consultant_id == self._terms.doctor_id:
            raise ApplicationError("不能邀请本次复诊的接诊医生本人会诊", type="CONSULTANT_IS_ATTENDING")
        if request.consultant_id in self._state.consultants:
            raise ApplicationError("该医生已受邀参加本次会诊", type="ALREADY_INVITED")
        if len(self._state.consultants) >= MAX_CONSULTANTS:
            raise ApplicationError(f"一次复诊最多邀请{MAX_CONSULTANTS}位医生会诊", type="TOO_MANY_CONSULTANTS")

    @workflow.update
    async def give_opinion(self, request: GiveOpinion) -> VisitState:
        """An invited doctor signs their opinion (SM2 with a trusted timestamp); it is locked from then on."""
        async with self._lock:
            if request.doctor_id in self._state.opinions:  # a concurrent twin got here first
                raise ApplicationError("会诊意见已签署，不能修改", type="OPINION_SIGNED")
            await call(ConsultationActivities.sign_opinion, self._terms, request)
            self._state.opinions.append(request.doctor_id)
        self._notices.send(
            f"consult-opinion:{request.doctor_id}",
            f"doctor:{self._terms.doctor_id}",
            "consult_opinion",
            time=local(self._terms.starts_at),
        )
        return self._state

    @give_opinion.validator
    def _validate_give_opinion(self, request: GiveOpinion) -> None:
        if request.doctor_id not in self._state.consultants:
            raise ApplicationError("不是本次复诊的会诊医生", type="FORBIDDEN")
        self._require_open_consult()
        if request.doctor_id in self._state.opinions:
            raise ApplicationError("会诊意见已签署，不能修改", type="OPINION_SIGNED")

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
        if not self._state.record_signed:
            raise ApplicationError("请先签署病历再结束复诊", type="RECORD_NOT_SIGNED")

    def _ended(self) -> bool:
        return self._state.stage in _END_STAGES

    def _require_patient(self, patient_id: str) -> None:
        if patient_id != self._visit.patient_id:
            raise ApplicationError("无权操作该挂号", type="FORBIDDEN")

    def _require_doctor(self, doctor_id: str) -> None:
        if doctor_id != self._terms.doctor_id:
            raise ApplicationError("不是本次复诊的接诊医生", type="FORBIDDEN")

    def _refuse_during_leave(self) -> None:
        if self._leave is not None:
            raise ApplicationError("医生已停诊，请先选择改约或退款", type="LEAVE_DECISION_PENDING")

    def _require_in_consult(self, doctor_id: str) -> None:
        self._require_doctor(doctor_id)
        self._require_open_consult()

    def _require_open_consult(self) -> None:
        if self._state.stage is not VisitStage.IN_CONSULT or self._abort is not None or self._finished:
            raise ApplicationError("复诊未在进行中", type="VISIT_NOT_IN_CONSULT")

    @workflow.query
    def state(self) -> VisitState:
        return self._state

"""ExamOrder (8.4.1, 8.4.2): the exams (检查/检验) a doctor ordered in a consult, from payment to each exam performed.

Started by the Visit flow (`order_exams`) and outliving it:
  awaiting_payment ─pay→ (Bill child, kind exam) ─paid→ paid ──every exam performed or cancelled──→ completed
        │ window passes, cancelled, bill closes unpaid      │ validity passes: open exams refunded  cancelled
        ▼                                                   ▼                                     (none performed)
    cancelled                                           completed / cancelled (expired if a refund failed)
The patient pays when ready (`pay` opens the bill, one per order), then books a day for each exam that needs one
(`book`: PostgreSQL holds the place, activities/exams.py). Until an exam is performed (`perform`, by the exam
department or the ordering doctor) the patient may cancel it (`cancel`) and gets its price back along the bill's
original path; the hospital may cancel it too, with a refund an administrator authorizes. A performed exam is never
refunded here. Every refund is claimed against the bill (activities/billing.py), so none is paid twice or above what
was paid.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.exams import ExamActivities
    from models.billing import (
        BillInput,
        BillKind,
        BillState,
        BillStatus,
        RefundInput,
        RefundKind,
        RefundResult,
        RefundStatus,
    )
    from models.common import HOSPITAL_TZ
    from models.exam import (
        EXAM_END_STAGES,
        BookExam,
        CancelExams,
        ExamBooking,
        ExamItemState,
        ExamItemStatus,
        ExamOrderInput,
        ExamOrderStage,
        ExamOrderState,
        PayExams,
        PerformExam,
        ordered_state,
    )
    from workflows.bill import BILL_OPENED_SIGNAL, BillWorkflow, bill_workflow_id
    from workflows.refund import RefundWorkflow, refund_workflow_id
    from workflows.steps import Notices, db, local, refusal, yuan


# Why a refund is allowed, recorded on it (models.billing.RefundInput.reason_code).
PATIENT_CANCELLED = "patient_cancelled_exam"
HOSPITAL_CANCELLED = "hospital_cancelled_exam"
EXPIRED_UNPERFORMED = "exam_expired_unperformed"


def exam_workflow_id(order_id: str) -> str:
    return f"exam-{order_id}"


def _names(items: list[ExamItemState]) -> str:
    return "、".join(item.name for item in items)


@workflow.defn(name="ExamOrder")
class ExamOrderWorkflow:
    @workflow.init
    def __init__(self, order: ExamOrderInput) -> None:
        self._notices = Notices()
        self._order = order
        self._state = ordered_state(order)
        self._pay_requested = False
        # A cancel asked before the order was paid, and whether the flow has settled it (closed, or refunded when the
        # payment went through meanwhile).
        self._unpaid_cancel: CancelExams | None = None
        self._unpaid_cancel_done = False
        self._refunds = 0
        self._lock = asyncio.Lock()

    @workflow.run
    async def run(self, order: ExamOrderInput) -> ExamOrderState:
        windows = order.windows
        window = timedelta(seconds=windows.pay_window_s)
        self._notices.send(
            "ordered",
            self._patient,
            "exam_ordered",
            names=_names(self._state.items),
            amount=yuan(self._state.total_fen),
            deadline=local(workflow.now() + window),
        )
        try:
            await workflow.wait_condition(
                lambda: self._pay_requested or self._unpaid_cancel is not None, timeout=window
            )
        except TimeoutError:
            pass
        if self._unpaid_cancel is not None:
            return await self._close(self._unpaid_cancel)
        if not self._pay_requested:
            return await self._close(None, "未在规定时间内缴费")

        bill = BillInput(
            bill_id=self._state.bill_id,
            kind=BillKind.EXAM,
            ref_id=order.order_id,
            patient_id=order.patient_id,
            amount_fen=self._state.total_fen,
            description="检查检验费",
            channel=order.channel,
            pay_window_s=windows.pay_window_s,
        )
        bill_handle = await workflow.start_child_workflow(BillWorkflow.run, bill, id=bill_workflow_id(bill.bill_id))
        # A cancel while the bill is open closes it at once instead of waiting out the window.
        cancel_watch = asyncio.ensure_future(self._forward_cancel(bill_handle))
        paid: BillState = await bill_handle
        cancel_watch.cancel()
        if paid.status is not BillStatus.PAID:
            # The bill told the patient it closed unpaid, unless they cancelled it themselves.
            return await self._close(self._unpaid_cancel, "检查费用未在规定时间内支付", tell=False)

        now = workflow.now()
        valid_until = now + timedelta(seconds=windows.valid_s)
        self._state.stage = ExamOrderStage.PAID
        self._state.paid_at = paid.paid_at or now
        self._state.valid_until = valid_until
        for item in self._state.items:
            item.status = ExamItemStatus.PAID
        await self._record()
        to_book = [item for item in self._state.items if item.needs_booking]
        self._notices.send(
            "paid",
            self._patient,
            "exam_paid",
            names=_names(self._state.items),
            booking=f"其中{_names(to_book)}需预约检查日期，请在检查单中选择。" if to_book else "",
            valid_until=local(valid_until, "%Y-%m-%d"),
        )
        if self._unpaid_cancel is not None:
            # The payment went through while the patient was cancelling: give it back.
            async with self._lock:
                await self._refund(self._open_items(), self._unpaid_cancel)
        self._unpaid_cancel_done = True

        try:
            await workflow.wait_condition(self._settled, timeout=valid_until - workflow.now())
        except TimeoutError:
            await self._expire()
        await workflow.wait_condition(lambda: not self._lock.locked())
        items = self._state.items
        if not all(item.settled for item in items):
            self._state.stage = ExamOrderStage.EXPIRED
        elif any(item.status is ExamItemStatus.PERFORMED for item in items):
            self._state.stage = ExamOrderStage.COMPLETED
        else:
            self._state.stage = ExamOrderStage.CANCELLED
        await self._record()
        return await self._finish()

    async def _forward_cancel(self, bill_handle: workflow.ChildWorkflowHandle) -> None:
        await workflow.wait_condition(lambda: self._unpaid_cancel is not None)
        await bill_handle.signal(BillWorkflow.cancel)

    async def _close(self, cancel: CancelExams | None, reason: str = "", *, tell: bool = True) -> ExamOrderState:
        """End an order that was never paid: every exam cancelled, nothing to refund."""
        if cancel is not None:
            reason = f"{'医院' if cancel.hospital else '患者'}取消：{cancel.reason}"
            tell = cancel.hospital  # the patient knows what they did themselves
        self._state.stage = ExamOrderStage.CANCELLED
        self._state.end_reason = reason
        for item in self._state.items:
            item.status = ExamItemStatus.CANCELLED
            item.cancel_reason = reason
        await self._record()
        self._unpaid_cancel_done = True
        if tell:
            self._notices.send("closed", self._patient, "exam_closed", names=_names(self._state.items), reason=reason)
        return await self._finish()

    async def _expire(self) -> None:
        """The validity passed: exams still open are refunded (they were paid for and never performed)."""
        async with self._lock:
            expired = self._open_items()
            if not expired:
                return
            amount = yuan(sum(item.price_fen for item in expired))
            request = CancelExams(
                requested_by="system", reason="检查单已过有效期未执行", reason_code=EXPIRED_UNPERFORMED
            )
            self._state.end_reason = request.reason
            refunded = await self._refund(expired, request)
        if refunded.status is RefundStatus.SUCCEEDED:  # a failed one is finance's now (the Refund flow told them)
            self._notices.send("expired", self._patient, "exam_expired", names=_names(expired), amount=amount)

    async def _refund(self, items: list[ExamItemState], request: CancelExams) -> RefundResult:
        """Refund the exams' price along the bill's original path; once refunded they are cancelled and their days
        given back. A refund that did not succeed leaves them as they were. The caller holds the lock."""
        before = [(item, item.status) for item in items]
        for item in items:
            item.status = ExamItemStatus.REFUNDING
        amount = sum(item.price_fen for item in items)
        self._refunds += 1
        sequence = f"e{self._refunds}"
        bill_id = self._state.bill_id
        if request.hospital:
            who, kind = "医院取消检查", RefundKind.AUTHORIZED
        else:
            who, kind = ("患者取消检查" if request.requested_by != "system" else "检查过期"), RefundKind.ORDINARY
        refund = RefundInput(
            refund_id=f"{bill_id}-{sequence}",
            bill_id=bill_id,
            patient_id=self._order.patient_id,
            channel=self._order.channel,
            amount_fen=amount,
            reason=f"{who}（{_names(items)}）：{request.reason}",
            requested_by=request.requested_by,
            kind=kind,
            reason_code=request.reason_code or (HOSPITAL_CANCELLED if request.hospital else PATIENT_CANCELLED),
            authorized_by=request.requested_by if request.hospital else None,
        )
        result: RefundResult = await workflow.execute_child_workflow(
            RefundWorkflow.run, refund, id=refund_workflow_id(bill_id, sequence)
        )
        if result.status is RefundStatus.SUCCEEDED:
            booked = [item.item_no for item in items if item.booked_day is not None]
            if booked:
                await db(ExamActivities.release_exam_days, self._order.order_id, booked)
            for item in items:
                item.status = ExamItemStatus.CANCELLED
                item.booked_day = None
                item.refund_id = result.refund_id
                item.cancel_reason = request.reason
            self._state.refunded_fen += amount
        else:
            for item, status in before:
                item.status = status
        await self._record()
        return result

    async def _record(self) -> None:
        await db(ExamActivities.record_exam_order, self._order, self._state)

    async def _finish(self) -> ExamOrderState:
        await self._notices.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    def _settled(self) -> bool:
        return all(item.settled for item in self._state.items) and not self._lock.locked()

    def _open_items(self) -> list[ExamItemState]:
        return [item for item in self._state.items if item.open]

    @property
    def _patient(self) -> str:
        return f"patient:{self._order.patient_id}"

    # --- messages ---

    @workflow.signal(name=BILL_OPENED_SIGNAL)
    def bill_opened(self, bill: BillState) -> None:
        self._state.pay_url = bill.pay_url
        self._state.pay_deadline = bill.pay_deadline

    @workflow.update
    async def pay(self, request: PayExams) -> ExamOrderState:
        """Open the order's bill; answers with where to pay once the bill is open."""
        self._pay_requested = True
        await workflow.wait_condition(
            lambda: self._state.pay_url is not None or self._state.stage is not ExamOrderStage.AWAITING_PAYMENT
        )
        return self._state

    @pay.validator
    def _validate_pay(self, request: PayExams) -> None:
        self._require_patient(request.patient_id)
        self._refuse_ended()
        if self._state.stage is not ExamOrderStage.AWAITING_PAYMENT:
            raise ApplicationError("检查费用已支付", type="EXAM_ALREADY_PAID")
        if self._unpaid_cancel is not None:
            raise ApplicationError("检查单正在取消", type="EXAM_CANCEL_IN_PROGRESS")

    @workflow.update
    async def book(self, request: BookExam) -> ExamOrderState:
        """Book a day for an exam that needs one (or move it to another day): PostgreSQL holds the place."""
        async with self._lock:
            item = self._bookable(request)
            if item.booked_day != request.day:
                booking = ExamBooking(
                    order_id=self._order.order_id, item_no=item.item_no, code=item.code, day=request.day
                )
                try:
                    await db(ExamActivities.book_exam_day, booking)
                except (ActivityError, ApplicationError) as failure:
                    raise refusal(failure, "EXAM_BOOKING_FAILED", "预约未能完成，请稍后重试") from None
                item.status = ExamItemStatus.BOOKED
                item.booked_day = request.day
                await self._record()
        where = item.department + (f"（{item.campus}院区）" if item.campus else "")
        self._notices.send(
            f"booked:{item.item_no}:{request.day.isoformat()}",
            self._patient,
            "exam_booked",
            name=item.name,
            day=request.day.isoformat(),
            where=where,
            preparation=f"检查前须知：{item.preparation}" if item.preparation else "",
        )
        return self._state

    @book.validator
    def _validate_book(self, request: BookExam) -> None:
        self._require_patient(request.patient_id)
        self._bookable(request)

    def _bookable(self, request: BookExam) -> ExamItemState:
        item = self._open_item(request.item_no)
        if not item.needs_booking:
            raise ApplicationError(f"{item.name}无需预约，缴费后按指引到{item.department}检查", type="EXAM_NO_BOOKING")
        today = workflow.now().astimezone(HOSPITAL_TZ).date()
        last = today + timedelta(days=self._order.windows.booking_days)
        if self._state.valid_until is not None:
            last = min(last, self._state.valid_until.astimezone(HOSPITAL_TZ).date())
        if not today <= request.day <= last:
            raise ApplicationError(
                f"请选择 {today.isoformat()} 至 {last.isoformat()} 之间的日期", type="EXAM_DAY_OUT_OF_RANGE"
            )
        return item

    @workflow.update
    async def perform(self, request: PerformExam) -> ExamOrderState:
        async with self._lock:
            item = self._performable(request.item_no)
            item.status = ExamItemStatus.PERFORMED
            item.performed_at = workflow.now()
            item.performed_by = request.performed_by
            await self._record()
        return self._state

    @perform.validator
    def _validate_perform(self, request: PerformExam) -> None:
        self._performable(request.item_no)

    def _performable(self, item_no: int) -> ExamItemState:
        item = self._open_item(item_no)
        if item.needs_booking and item.status is not ExamItemStatus.BOOKED:
            raise ApplicationError(f"{item.name}尚未预约检查日期", type="EXAM_NOT_BOOKED")
        return item

    @workflow.update
    async def cancel(self, request: CancelExams) -> ExamOrderState:
        if self._state.stage is ExamOrderStage.AWAITING_PAYMENT:
            self._unpaid_cancel = request
            await workflow.wait_condition(lambda: self._unpaid_cancel_done)
            return self._state
        async with self._lock:
            items = self._cancellable(request)
            result = await self._refund(items, request)
        if result.status is not RefundStatus.SUCCEEDED:
            raise ApplicationError(f"退款未成功：{result.failure or '支付渠道退款未成功'}", type="REFUND_FAILED")
        if request.hospital:
            self._notices.send(
                f"hospital-cancelled:{result.refund_id}",
                self._patient,
                "exam_cancelled_by_hospital",
                names=_names(items),
                reason=request.reason,
                amount=yuan(result.amount_fen),
            )
        return self._state

    @cancel.validator
    def _validate_cancel(self, request: CancelExams) -> None:
        if not request.hospital:
            self._require_patient(request.requested_by)
        self._refuse_ended()
        if self._state.stage is ExamOrderStage.AWAITING_PAYMENT:
            if request.item_nos:
                raise ApplicationError("未缴费的检查单只能整单取消", type="EXAM_NOT_PAID")
            if self._unpaid_cancel is not None:
                raise ApplicationError("检查单正在取消", type="EXAM_CANCEL_IN_PROGRESS")
            return
        self._cancellable(request)

    def _cancellable(self, request: CancelExams) -> list[ExamItemState]:
        """The exams the request cancels, each still open; refused as a whole when any is not."""
        self._refuse_ended()
        if request.item_nos:
            return [self._open_item(item_no) for item_no in dict.fromkeys(request.item_nos)]
        items = self._open_items()
        if not items:
            if any(item.status is ExamItemStatus.REFUNDING for item in self._state.items):
                raise ApplicationError("检查项目正在退费", type="EXAM_CANCEL_IN_PROGRESS")
            raise ApplicationError("检查均已执行或已取消，没有可取消的项目", type="EXAM_PERFORMED")
        return items

    def _open_item(self, item_no: int) -> ExamItemState:
        """An exam of this order that is paid and neither performed nor cancelled, or the refusal saying why not."""
        self._refuse_ended()
        item = self._state.item(item_no)
        if item is None:
            raise ApplicationError("检查项目不存在", type="NOT_FOUND")
        if self._state.stage is ExamOrderStage.AWAITING_PAYMENT:
            raise ApplicationError("请先缴纳检查费用", type="EXAM_NOT_PAID")
        if item.status is ExamItemStatus.PERFORMED:
            raise ApplicationError(f"{item.name}已执行，不能取消或退费", type="EXAM_PERFORMED")
        if item.status is ExamItemStatus.REFUNDING:
            raise ApplicationError(f"{item.name}正在退费", type="EXAM_CANCEL_IN_PROGRESS")
        if item.status is ExamItemStatus.CANCELLED:
            raise ApplicationError(f"{item.name}已取消", type="EXAM_CANCELLED")
        return item

    def _refuse_ended(self) -> None:
        if self._state.stage in EXAM_END_STAGES:
            raise ApplicationError("检查单已结束", type="EXAM_ORDER_CLOSED")

    def _require_patient(self, patient_id: str) -> None:
        if patient_id != self._order.patient_id:
            raise ApplicationError("无权操作该检查单", type="FORBIDDEN")

    @workflow.query
    def state(self) -> ExamOrderState:
        return self._state

"""Record the histories of exam orders (ordered in the consult, paid, booked, performed, cancelled with refunds: the
patient's, the hospital's authorized one, the one at expiry) under `tests/histories/`, as `tests/replay/record.py`
does for the others (same rules: record only new scenarios; never re-record to make a replay pass).

Run with `.venv/bin/python -m tests.replay.record_exams` (optionally naming scenarios).
"""

from __future__ import annotations

from models.exam import BookExam, CancelExams, ExamOrderInput, ExamOrderStage, OrderExams, PayExams, PerformExam
from models.record import SignRecord
from models.visit import AcceptVisit, FinishVisit, VisitStage, WriteRecord
from tests.replay.record import Recorder, _visit, main, timer_started
from tests.workflows.test_exam import CBC, TONGUE, WINDOWS, exam_order, paid, start, tomorrow
from tests.workflows.test_visit import RECORD, book, pay, wait_stage
from workflows.bill import bill_workflow_id
from workflows.exam import ExamOrderWorkflow, exam_workflow_id
from workflows.visit import VisitWorkflow


def _order(order_id: str, **windows: int) -> ExamOrderInput:
    return exam_order(WINDOWS.model_copy(update=windows)).model_copy(update={"order_id": order_id})


async def exam_paid_booked_performed_cancelled(r: Recorder) -> None:
    """Paid; the 舌象仪检测 booked, the 血常规 performed; the patient cancels the booked one and is refunded."""
    async with r.harness("exam-lifecycle") as h:
        handle = await paid(h, _order("rec-exam-1"))
        await handle.execute_update(ExamOrderWorkflow.book, BookExam(patient_id="pat-1", item_no=1, day=tomorrow()))
        await handle.execute_update(ExamOrderWorkflow.perform, PerformExam(performed_by="u-admin", item_no=2))
        await handle.execute_update(
            ExamOrderWorkflow.cancel, CancelExams(requested_by="pat-1", item_nos=[1], reason="症状缓解")
        )
        assert (await handle.result()).stage is ExamOrderStage.COMPLETED
        await r.save(handle.id, "ExamOrder-paid_booked_performed_cancelled_refunded")


async def exam_cancelled_while_bill_open(r: Recorder) -> None:
    async with r.harness("exam-cancel-unpaid") as h:
        order = _order("rec-exam-2", pay_window_s=600)
        handle = await start(h, order)
        await handle.execute_update(ExamOrderWorkflow.pay, PayExams(patient_id="pat-1"))
        await timer_started(h.client.get_workflow_handle(bill_workflow_id(f"{order.order_id}-pay")))
        await handle.execute_update(ExamOrderWorkflow.cancel, CancelExams(requested_by="pat-1", reason="改期"))
        await handle.result()
        await r.save(handle.id, "ExamOrder-bill_open_cancelled")


async def exam_never_paid(r: Recorder) -> None:
    async with r.harness("exam-unpaid") as h:
        handle = await start(h, _order("rec-exam-3", pay_window_s=1))
        await handle.result()
        await r.save(handle.id, "ExamOrder-unpaid_window_passed")


async def exam_hospital_cancelled_then_expired(r: Recorder) -> None:
    """The hospital cancels one exam (an authorized refund); the other is never performed and is refunded
    when the order's validity passes."""
    async with r.harness("exam-hospital-expired") as h:
        handle = await paid(h, _order("rec-exam-4", valid_s=4))
        await handle.execute_update(
            ExamOrderWorkflow.cancel,
            CancelExams(
                requested_by="u-admin", hospital=True, item_nos=[1], reason="设备维护",
                reason_code="equipment_unavailable",
            ),
        )  # fmt: skip
        assert (await handle.result()).stage is ExamOrderStage.CANCELLED
        await r.save(handle.id, "ExamOrder-hospital_cancelled_then_expired_refunded")


async def visit_with_exams(r: Recorder) -> None:
    """The doctor orders exams in the consult; the order outlives the visit (its own scenarios record it)."""
    async with r.harness("visit-exams") as h:
        visit = _visit("rec-exams")
        _, handle = await book(h, visit)
        await pay(h, visit)
        await wait_stage(handle, VisitStage.WAITING_DOCTOR)
        await handle.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id="doc-1"))
        order_id = f"{visit.visit_id}-ex1"
        await handle.execute_update(
            VisitWorkflow.order_exams,
            OrderExams(doctor_id="doc-1", order_id=order_id, lines=[TONGUE, CBC], windows=WINDOWS),
        )
        await handle.execute_update(VisitWorkflow.write_record, WriteRecord(doctor_id="doc-1", record=RECORD))
        await handle.execute_update(VisitWorkflow.sign_record, SignRecord(doctor_id="doc-1"))
        await handle.execute_update(VisitWorkflow.finish, FinishVisit(doctor_id="doc-1"))
        assert (await handle.result()).stage is VisitStage.FINISHED
        await r.save(handle.id, "Visit-exams_ordered_finished")
        await h.client.get_workflow_handle(exam_workflow_id(order_id)).terminate("recorded elsewhere")


SCENARIOS = {
    "ExamOrder-paid_booked_performed_cancelled_refunded": exam_paid_booked_performed_cancelled,
    "ExamOrder-bill_open_cancelled": exam_cancelled_while_bill_open,
    "ExamOrder-unpaid_window_passed": exam_never_paid,
    "ExamOrder-hospital_cancelled_then_expired_refunded": exam_hospital_cancelled_then_expired,
    "Visit-exams_ordered_finished": visit_with_exams,
}


if __name__ == "__main__":
    main(SCENARIOS)

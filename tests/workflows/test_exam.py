"""Exam orders on the dev server with fake activities: ordered in the consult, paid on a bill of their own, booked
per exam, performed, cancelled before they are performed with a refund along the original path (the patient's, the
hospital's authorized one, the one at expiry), and never refunded once performed."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from models.billing import BillStatus, ChannelOrderStatus, PaymentNotice, RefundKind
from models.common import HOSPITAL_TZ
from models.exam import (
    BookExam,
    CancelExams,
    ExamItemStatus,
    ExamLine,
    ExamOrderInput,
    ExamOrderStage,
    ExamWindows,
    OrderExams,
    PayExams,
    PerformExam,
    exam_bill_id,
)
from models.visit import AcceptVisit, VisitStage
from tests.workflows.conftest import Harness
from tests.workflows.test_money import told
from tests.workflows.test_prescription import until
from tests.workflows.test_visit import book, pay, visit_input, wait_stage
from workflows.bill import BillWorkflow, bill_workflow_id
from workflows.exam import PATIENT_CANCELLED, ExamOrderWorkflow, exam_workflow_id
from workflows.visit import VisitWorkflow

TONGUE = ExamLine(
    item_no=1, code="TCM-TONGUE", name="舌象仪检测", price_fen=3000, needs_booking=True, department="中医诊断室"
)
CBC = ExamLine(item_no=2, code="LAB-CBC", name="血常规", price_fen=1800, needs_booking=False, department="检验科")
WINDOWS = ExamWindows(pay_window_s=60, valid_s=3 * 24 * 3600, booking_days=14)


def exam_order(windows: ExamWindows = WINDOWS, lines: list[ExamLine] | None = None) -> ExamOrderInput:
    return ExamOrderInput(
        order_id=f"v-{uuid.uuid4().hex[:8]}-ex1",
        visit_id="v-1",
        patient_id="pat-1",
        doctor_id="doc-1",
        lines=lines or [TONGUE, CBC],
        channel="sandbox",
        windows=windows,
    )


async def start(h: Harness, order: ExamOrderInput) -> WorkflowHandle:
    return await h.client.start_workflow(
        ExamOrderWorkflow.run, order, id=exam_workflow_id(order.order_id), task_queue=h.queue
    )


async def stage(handle: WorkflowHandle, wanted: ExamOrderStage) -> None:
    async def reached() -> bool:
        return (await handle.query(ExamOrderWorkflow.state)).stage is wanted

    await until(reached)


async def paid(h: Harness, order: ExamOrderInput) -> WorkflowHandle:
    """An order the patient paid: the bill opened on asking, the channel's notice for its total."""
    handle = await start(h, order)
    opened = await handle.execute_update(ExamOrderWorkflow.pay, PayExams(patient_id="pat-1"))
    assert opened.pay_url and opened.bill_id == exam_bill_id(order.order_id)
    await h.client.get_workflow_handle(bill_workflow_id(opened.bill_id)).signal(
        BillWorkflow.payment_notice,
        PaymentNotice(out_trade_no=opened.bill_id, status=ChannelOrderStatus.SUCCESS, amount_fen=opened.total_fen),
    )
    await stage(handle, ExamOrderStage.PAID)
    return handle


def tomorrow() -> date:
    return (datetime.now(UTC).astimezone(HOSPITAL_TZ) + timedelta(days=1)).date()


async def refused(call, code: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await call
    assert failure.value.cause.type == code, failure.value.cause


async def test_ordered_in_consult_paid_booked_one_performed_the_other_cancelled_and_refunded(harness: Harness) -> None:
    world = harness.world
    visit = visit_input()
    _, visit_handle = await book(harness, visit)
    await pay(harness, visit)
    await wait_stage(visit_handle, VisitStage.WAITING_DOCTOR)
    await visit_handle.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id="doc-1"))
    order_id = f"{visit.visit_id}-ex1"
    request = OrderExams(doctor_id="doc-1", order_id=order_id, lines=[TONGUE, CBC], windows=WINDOWS)

    # Only the visit's doctor orders, and only once per order id.
    await refused(
        visit_handle.execute_update(VisitWorkflow.order_exams, request.model_copy(update={"doctor_id": "doc-2"})),
        "FORBIDDEN",
    )
    ordered = await visit_handle.execute_update(VisitWorkflow.order_exams, request)
    assert ordered.stage is ExamOrderStage.AWAITING_PAYMENT and ordered.total_fen == 4800
    assert [i.status for i in ordered.items] == [ExamItemStatus.ORDERED] * 2
    await refused(visit_handle.execute_update(VisitWorkflow.order_exams, request), "DUPLICATE_EXAM_ORDER")
    assert world.exam_states[0].order_id == order_id  # listed before the update answered
    await told(world, "exam_ordered")

    handle = harness.client.get_workflow_handle_for(ExamOrderWorkflow.run, exam_workflow_id(order_id))
    # Nothing is booked, performed or cancelled item by item before the order is paid.
    await refused(
        handle.execute_update(ExamOrderWorkflow.book, BookExam(patient_id="pat-1", item_no=1, day=tomorrow())),
        "EXAM_NOT_PAID",
    )
    await refused(
        handle.execute_update(ExamOrderWorkflow.cancel, CancelExams(requested_by="pat-1", item_nos=[1], reason="x")),
        "EXAM_NOT_PAID",
    )
    await refused(handle.execute_update(ExamOrderWorkflow.pay, PayExams(patient_id="pat-2")), "FORBIDDEN")
    opened = await handle.execute_update(ExamOrderWorkflow.pay, PayExams(patient_id="pat-1"))
    again = await handle.execute_update(ExamOrderWorkflow.pay, PayExams(patient_id="pat-1"))
    assert opened.pay_url and again.pay_url == opened.pay_url
    await harness.client.get_workflow_handle(bill_workflow_id(opened.bill_id)).signal(
        BillWorkflow.payment_notice,
        PaymentNotice(out_trade_no=opened.bill_id, status=ChannelOrderStatus.SUCCESS, amount_fen=4800),
    )
    await stage(handle, ExamOrderStage.PAID)
    await told(world, "exam_paid")

    day = tomorrow()
    await refused(
        handle.execute_update(ExamOrderWorkflow.book, BookExam(patient_id="pat-1", item_no=2, day=day)),
        "EXAM_NO_BOOKING",
    )
    await refused(
        handle.execute_update(
            ExamOrderWorkflow.book, BookExam(patient_id="pat-1", item_no=1, day=day + timedelta(days=30))
        ),
        "EXAM_DAY_OUT_OF_RANGE",
    )
    # An exam that needs a day is not performed without one.
    await refused(
        handle.execute_update(ExamOrderWorkflow.perform, PerformExam(performed_by="u-admin", item_no=1)),
        "EXAM_NOT_BOOKED",
    )
    booked = await handle.execute_update(ExamOrderWorkflow.book, BookExam(patient_id="pat-1", item_no=1, day=day))
    assert booked.items[0].status is ExamItemStatus.BOOKED and booked.items[0].booked_day == day
    assert world.exam_holds == {(order_id, 1): ("TCM-TONGUE", day)}
    await told(world, "exam_booked")

    performed = await handle.execute_update(ExamOrderWorkflow.perform, PerformExam(performed_by="u-admin", item_no=2))
    assert performed.items[1].status is ExamItemStatus.PERFORMED and performed.items[1].performed_by == "u-admin"
    # Performed: never refunded by the patient, alone or as part of "everything".
    await refused(
        handle.execute_update(ExamOrderWorkflow.cancel, CancelExams(requested_by="pat-1", item_nos=[2], reason="x")),
        "EXAM_PERFORMED",
    )
    await refused(
        handle.execute_update(ExamOrderWorkflow.cancel, CancelExams(requested_by="pat-1", item_nos=[1, 2], reason="x")),
        "EXAM_PERFORMED",
    )
    refunds_before = len(world.refunds)
    cancelled = await handle.execute_update(
        ExamOrderWorkflow.cancel, CancelExams(requested_by="pat-1", item_nos=[1], reason="症状缓解")
    )
    item = cancelled.items[0]
    assert item.status is ExamItemStatus.CANCELLED and item.refund_id == f"{opened.bill_id}-e1"
    assert cancelled.refunded_fen == 3000
    [refund] = world.refunds[refunds_before:]
    assert (refund.bill_id, refund.amount_fen, refund.kind) == (opened.bill_id, 3000, RefundKind.ORDINARY)
    assert refund.requested_by == "pat-1" and "舌象仪检测" in refund.reason
    assert world.exam_releases == [(order_id, [1])] and world.exam_holds == {}

    # Every exam performed or cancelled: the order is done.
    final = await handle.result()
    assert final.stage is ExamOrderStage.COMPLETED
    assert (await visit_handle.query(VisitWorkflow.state)).exam_order_ids == [order_id]
    await visit_handle.terminate("test done")


async def test_cancelling_before_payment_closes_the_open_bill_and_refunds_nothing(harness: Harness) -> None:
    world = harness.world
    order = exam_order()
    handle = await start(harness, order)
    opened = await handle.execute_update(ExamOrderWorkflow.pay, PayExams(patient_id="pat-1"))
    await refused(
        handle.execute_update(ExamOrderWorkflow.cancel, CancelExams(requested_by="pat-2", reason="x")), "FORBIDDEN"
    )
    closed = await handle.execute_update(
        ExamOrderWorkflow.cancel, CancelExams(requested_by="pat-1", reason="改去线下医院检查")
    )
    assert closed.stage is ExamOrderStage.CANCELLED
    assert {i.status for i in closed.items} == {ExamItemStatus.CANCELLED}
    bill = await harness.client.get_workflow_handle_for(BillWorkflow.run, bill_workflow_id(opened.bill_id)).result()
    assert bill.status is BillStatus.CLOSED
    assert world.refunds == []
    # The patient closed it themselves: no notice that it closed.
    assert "exam_closed" not in {n.template for n in world.notices}


async def test_an_order_never_paid_closes_when_its_window_passes(harness: Harness) -> None:
    order = exam_order(WINDOWS.model_copy(update={"pay_window_s": 1}))
    state = await (await start(harness, order)).result()
    assert state.stage is ExamOrderStage.CANCELLED and state.end_reason == "未在规定时间内缴费"
    await told(harness.world, "exam_closed")


async def test_the_hospital_cancels_with_an_authorized_refund_and_tells_the_patient(harness: Harness) -> None:
    world = harness.world
    order = exam_order()
    handle = await paid(harness, order)
    await handle.execute_update(ExamOrderWorkflow.book, BookExam(patient_id="pat-1", item_no=1, day=tomorrow()))
    # An administrator's cancellation is not the patient's: no patient check, a refund the administrator authorized.
    cancelled = await handle.execute_update(
        ExamOrderWorkflow.cancel,
        CancelExams(
            requested_by="u-admin", hospital=True, item_nos=[1], reason="舌象仪故障停用",
            reason_code="equipment_unavailable",
        ),
    )  # fmt: skip
    assert cancelled.items[0].status is ExamItemStatus.CANCELLED and cancelled.refunded_fen == 3000
    [refund] = world.refunds
    assert (refund.kind, refund.authorized_by, refund.amount_fen) == (RefundKind.AUTHORIZED, "u-admin", 3000)
    assert refund.reason_code == "equipment_unavailable" and refund.reason.startswith("医院取消检查")
    assert world.exam_releases == [(order.order_id, [1])]
    await told(world, "exam_cancelled_by_hospital")
    # Cancelled once, refunded once: asking again is refused, and the rest is the patient's to cancel.
    await refused(
        handle.execute_update(ExamOrderWorkflow.cancel, CancelExams(requested_by="pat-1", item_nos=[1], reason="x")),
        "EXAM_CANCELLED",
    )
    rest = await handle.execute_update(ExamOrderWorkflow.cancel, CancelExams(requested_by="pat-1", reason="不做了"))
    assert rest.refunded_fen == 4800 and rest.items[1].refund_id == f"{exam_bill_id(order.order_id)}-e2"
    assert [r.kind for r in world.refunds] == [RefundKind.AUTHORIZED, RefundKind.ORDINARY]
    assert world.refunds[1].reason_code == PATIENT_CANCELLED
    assert (await handle.result()).stage is ExamOrderStage.CANCELLED


async def test_a_full_day_refuses_the_booking_and_another_day_takes_it(harness: Harness) -> None:
    world = harness.world
    world.exam_capacity = 1
    first, second = exam_order(), exam_order()
    day = tomorrow()
    first_handle, second_handle = await paid(harness, first), await paid(harness, second)
    await first_handle.execute_update(ExamOrderWorkflow.book, BookExam(patient_id="pat-1", item_no=1, day=day))
    await refused(
        second_handle.execute_update(ExamOrderWorkflow.book, BookExam(patient_id="pat-1", item_no=1, day=day)),
        "EXAM_DAY_FULL",
    )
    state = await second_handle.query(ExamOrderWorkflow.state)
    assert state.items[0].status is ExamItemStatus.PAID and state.items[0].booked_day is None
    later = day + timedelta(days=1)
    moved = await second_handle.execute_update(
        ExamOrderWorkflow.book, BookExam(patient_id="pat-1", item_no=1, day=later)
    )
    assert moved.items[0].booked_day == later
    # Moving the first to the later day, now full too, is refused and keeps its place.
    await refused(
        first_handle.execute_update(ExamOrderWorkflow.book, BookExam(patient_id="pat-1", item_no=1, day=later)),
        "EXAM_DAY_FULL",
    )
    assert world.exam_holds[(first.order_id, 1)] == ("TCM-TONGUE", day)
    for handle in (first_handle, second_handle):
        await handle.terminate("test done")


async def test_a_refund_that_fails_leaves_the_exam_as_it_was(harness: Harness) -> None:
    world = harness.world
    handle = await paid(harness, exam_order())
    world.claim_refusal = "REFUND_EXCEEDS_PAID"
    await refused(
        handle.execute_update(ExamOrderWorkflow.cancel, CancelExams(requested_by="pat-1", item_nos=[2], reason="x")),
        "REFUND_FAILED",
    )
    state = await handle.query(ExamOrderWorkflow.state)
    assert state.items[1].status is ExamItemStatus.PAID and state.refunded_fen == 0
    await told(world, "refund_failed_finance")
    # Still open: it can be performed, and then it is not refundable.
    world.claim_refusal = None
    await handle.execute_update(ExamOrderWorkflow.perform, PerformExam(performed_by="doc-1", item_no=2))
    await refused(
        handle.execute_update(ExamOrderWorkflow.cancel, CancelExams(requested_by="pat-1", item_nos=[2], reason="x")),
        "EXAM_PERFORMED",
    )
    await handle.terminate("test done")


async def test_exams_not_performed_when_the_order_expires_are_refunded(harness: Harness) -> None:
    world = harness.world
    order = exam_order(WINDOWS.model_copy(update={"valid_s": 3}))
    handle = await paid(harness, order)
    await handle.execute_update(ExamOrderWorkflow.perform, PerformExam(performed_by="u-admin", item_no=2))
    final = await handle.result()
    assert final.stage is ExamOrderStage.COMPLETED
    assert [i.status for i in final.items] == [ExamItemStatus.CANCELLED, ExamItemStatus.PERFORMED]
    [refund] = world.refunds
    assert (refund.amount_fen, refund.requested_by, refund.reason_code) == (3000, "system", "exam_expired_unperformed")
    await told(world, "exam_expired")

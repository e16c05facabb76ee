"""Exam orders (检查/检验, 8.4.1 and 8.4.2): what a doctor orders in a consult, paid through one bill of kind `exam`,
booked per exam where the exam needs a time, performed by the hospital, and refunded per exam before it is performed.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from models.common import Fen

# At most this many exams in one order (a whole panel is ordered as several codes).
MAX_EXAMS_PER_ORDER = 10


class ExamLine(BaseModel):
    """One exam as ordered, from the hospital's exam catalogue at the time of ordering (its price stays this)."""

    item_no: int = Field(ge=1)
    code: str
    name: str
    price_fen: Fen
    needs_booking: bool
    department: str
    campus: str | None = None
    preparation: str = ""


class ExamItemStatus(StrEnum):
    ORDERED = "ordered"  # the order is not paid yet
    PAID = "paid"  # paid; an exam that needs a time waits for the patient to book one
    BOOKED = "booked"
    REFUNDING = "refunding"  # being cancelled: its refund is under way, nothing else may happen to it
    PERFORMED = "performed"  # done: no longer refundable by the patient
    CANCELLED = "cancelled"  # cancelled; refunded when it had been paid


class ExamItemState(ExamLine):
    status: ExamItemStatus
    booked_day: date | None = None
    performed_at: datetime | None = None
    performed_by: str | None = None
    refund_id: str | None = None
    cancel_reason: str | None = None

    @property
    def open(self) -> bool:
        """Paid and neither performed nor cancelled (nor being cancelled)."""
        return self.status in (ExamItemStatus.PAID, ExamItemStatus.BOOKED)

    @property
    def settled(self) -> bool:
        return self.status in (ExamItemStatus.PERFORMED, ExamItemStatus.CANCELLED)


class ExamOrderStage(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    PAID = "paid"  # exams being booked and performed
    COMPLETED = "completed"  # every exam performed or cancelled, at least one performed
    CANCELLED = "cancelled"  # closed unpaid, or every exam cancelled
    EXPIRED = "expired"  # the validity passed with exams neither performed nor refunded (a refund that failed)


EXAM_END_STAGES = (ExamOrderStage.COMPLETED, ExamOrderStage.CANCELLED, ExamOrderStage.EXPIRED)


class ExamWindows(BaseModel):
    """The business windows of an order, from the settings when it is ordered."""

    pay_window_s: int = Field(gt=0)
    # A paid order is valid this long: exams not performed by then are refunded.
    valid_s: int = Field(gt=0)
    # How far ahead (days from today) a time may be booked.
    booking_days: int = Field(gt=0)


class OrderExams(BaseModel):
    """The doctor orders exams during the consult (an update of the Visit flow)."""

    doctor_id: str
    order_id: str
    lines: list[ExamLine] = Field(min_length=1, max_length=MAX_EXAMS_PER_ORDER)
    note: str = Field(default="", max_length=500)
    windows: ExamWindows


class ExamOrderInput(BaseModel):
    order_id: str
    visit_id: str
    patient_id: str
    doctor_id: str
    lines: list[ExamLine]
    note: str = ""
    channel: str
    windows: ExamWindows


class ExamOrderState(BaseModel):
    order_id: str
    visit_id: str
    patient_id: str
    doctor_id: str
    stage: ExamOrderStage
    total_fen: Fen
    bill_id: str
    items: list[ExamItemState]
    note: str = ""
    pay_url: str | None = None
    pay_deadline: datetime | None = None
    paid_at: datetime | None = None
    # Exams not performed by then are refunded (set once paid).
    valid_until: datetime | None = None
    refunded_fen: Fen = 0
    end_reason: str | None = None

    def item(self, item_no: int) -> ExamItemState | None:
        return next((item for item in self.items if item.item_no == item_no), None)


class PayExams(BaseModel):
    patient_id: str


class BookExam(BaseModel):
    patient_id: str
    item_no: int
    day: date


class CancelExams(BaseModel):
    """Cancel exams of the order: the patient's (refund as the flow's own compensation) or the hospital's (an
    administrator authorizes the refund). No item numbers: every exam still open (before payment: the whole order)."""

    requested_by: str  # the patient id, or the administrator's user id
    hospital: bool = False
    item_nos: list[int] = Field(default=[], max_length=MAX_EXAMS_PER_ORDER)
    reason: str = Field(min_length=1, max_length=500)
    reason_code: str | None = None


class PerformExam(BaseModel):
    """The exam department (or the ordering doctor) records an exam as performed."""

    performed_by: str
    item_no: int


class ExamBooking(BaseModel):
    """Take one place of an exam's capacity on a day for one exam of an order (moving it from another day)."""

    order_id: str
    item_no: int
    code: str
    day: date


def exam_bill_id(order_id: str) -> str:
    """The bill of an exam order, as its flow names it (known before it opens)."""
    return f"{order_id}-pay"


def ordered_state(order: ExamOrderInput) -> ExamOrderState:
    """An order as the doctor placed it: every exam waiting for the payment."""
    return ExamOrderState(
        order_id=order.order_id,
        visit_id=order.visit_id,
        patient_id=order.patient_id,
        doctor_id=order.doctor_id,
        stage=ExamOrderStage.AWAITING_PAYMENT,
        total_fen=sum(line.price_fen for line in order.lines),
        bill_id=exam_bill_id(order.order_id),
        note=order.note,
        items=[ExamItemState(**line.model_dump(), status=ExamItemStatus.ORDERED) for line in order.lines],
    )

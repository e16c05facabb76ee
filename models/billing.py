"""Bills, payments and refunds (8.4)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from models.common import Fen


class BillKind(StrEnum):
    REGISTRATION = "registration"
    PRESCRIPTION = "prescription"


class BillStatus(StrEnum):
    OPEN = "open"
    PAID = "paid"
    CLOSED = "closed"


class BillInput(BaseModel):
    bill_id: str
    kind: BillKind
    ref_id: str
    patient_id: str
    amount_fen: Fen
    description: str
    channel: str
    pay_window_s: int


class ChannelOrderStatus(StrEnum):
    NOTPAY = "NOTPAY"
    SUCCESS = "SUCCESS"
    CLOSED = "CLOSED"


class ChannelOrder(BaseModel):
    """What the payment channel says about one order."""

    out_trade_no: str
    amount_fen: Fen
    status: ChannelOrderStatus
    prepay_id: str | None = None
    pay_url: str | None = None
    transaction_id: str | None = None
    paid_at: datetime | None = None


class PaymentNotice(BaseModel):
    """A verified payment result from the channel (its callback or a query), signalled to the Bill workflow."""

    out_trade_no: str
    status: ChannelOrderStatus
    amount_fen: Fen
    transaction_id: str | None = None
    paid_at: datetime | None = None


class BillState(BaseModel):
    bill_id: str
    status: BillStatus
    amount_fen: Fen
    pay_deadline: datetime | None = None
    pay_url: str | None = None
    transaction_id: str | None = None
    paid_at: datetime | None = None


class RefundStatus(StrEnum):
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RefundInput(BaseModel):
    refund_id: str
    bill_id: str
    patient_id: str
    channel: str
    amount_fen: Fen
    reason: str
    requested_by: str


class ChannelRefund(BaseModel):
    out_refund_no: str
    out_trade_no: str
    amount_fen: Fen
    status: RefundStatus
    refund_id: str | None = None
    succeeded_at: datetime | None = None


class RefundResult(BaseModel):
    refund_id: str
    bill_id: str
    amount_fen: Fen
    status: RefundStatus
    channel_refund_id: str | None = None


class ChannelBillLineKind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


class ChannelBillLine(BaseModel):
    """One line of a channel's daily statement (WeChat tradebill, Alipay 账务明细), normalised for reconciliation."""

    kind: ChannelBillLineKind
    out_trade_no: str
    transaction_id: str
    amount_fen: Fen
    occurred_at: datetime
    out_refund_no: str | None = None
    refund_id: str | None = None
    # The channel's own status word for the line (e.g. SUCCESS, REFUND, REVOKED), kept for status-mismatch reports.
    status: str
    fee_fen: Fen = 0

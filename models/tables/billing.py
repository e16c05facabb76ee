"""Bills and refunds. `refunded_fen` never passes `amount_fen` (a check constraint holds it).

A bill's `amount_fen` is what goes through its payment channel (what the channel's statement shows); with 医保,
`insurance_fen` is the part settled at the 医保 platform, and the whole bill is their sum. A refund row likewise holds
the channel part in `amount_fen` and the 医保 part it gave back in `insurance_fen`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, text
from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


class Bill(SQLModel, table=True):
    __tablename__ = "bills"
    __table_args__ = (
        CheckConstraint("refunded_fen <= amount_fen", name="bill_refund_cap"),
        CheckConstraint("insurance_refunded_fen <= insurance_fen", name="bill_insurance_refund_cap"),
        # A channel's payments of one day (reconciliation's platform side, finance's day views): the channel first,
        # then the paid_at range. Bills never paid have no place in it.
        Index("ix_bills_channel_paid_at", "channel", "paid_at", postgresql_where=text("paid_at IS NOT NULL")),
    )

    id: str = Field(primary_key=True, max_length=80)
    kind: str = Field(max_length=16)
    ref_id: str = Field(max_length=80, index=True)
    patient_id: str = Field(foreign_key="patients.id", index=True)
    amount_fen: int = Field(ge=0)
    refunded_fen: int = Field(default=0, ge=0)
    # Settled through 医保 (pooled fund and personal account). A settlement goes back whole (2208 / 6203); after a
    # partial refund beyond the self-pay part, what the new settlement of the remaining items covers stays unrefunded.
    insurance_fen: int = Field(default=0, ge=0, sa_column_kwargs={"server_default": "0"})
    insurance_refunded_fen: int = Field(default=0, ge=0, sa_column_kwargs={"server_default": "0"})
    description: str = ""
    status: str = Field(max_length=16, index=True)
    channel: str = Field(max_length=16)
    # The campus (院区) whose merchant takes the payment, where the hospital has several; reconciled per campus.
    campus: str | None = Field(default=None, max_length=16)
    pay_url: str | None = None
    transaction_id: str | None = Field(default=None, max_length=64)
    pay_deadline: datetime | None = Timestamp(nullable=True)
    paid_at: datetime | None = Timestamp(nullable=True)
    closed_at: datetime | None = Timestamp(nullable=True)
    created_at: datetime = Timestamp(default_now=True)
    # The e-invoice (电子票据) issued once paid: 票据代码, 票据号码, 校验码, where to see it; the red-letter receipt that
    # reversed it after a full refund.
    invoice_code: str | None = Field(default=None, max_length=32)
    invoice_no: str | None = Field(default=None, max_length=32)
    invoice_check_code: str | None = Field(default=None, max_length=32)
    invoice_url: str | None = None
    invoice_issued_at: datetime | None = Timestamp(nullable=True)
    red_invoice_code: str | None = Field(default=None, max_length=32)
    red_invoice_no: str | None = Field(default=None, max_length=32)


class Refund(SQLModel, table=True):
    __tablename__ = "refunds"

    id: str = Field(primary_key=True, max_length=100)
    bill_id: str = Field(foreign_key="bills.id", index=True)
    amount_fen: int = Field(gt=0)
    reason: str
    requested_by: str = Field(max_length=40)
    status: str = Field(max_length=16)
    channel_refund_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Timestamp(default_now=True)
    finished_at: datetime | None = Timestamp(nullable=True)
    # Why it is allowed (models.billing.RefundKind), the reason's code and who authorized or approved it.
    kind: str = Field(default="ordinary", max_length=16, sa_column_kwargs={"server_default": "ordinary"})
    reason_code: str | None = Field(default=None, max_length=40)
    authorized_by: str | None = Field(default=None, max_length=40)
    # The 医保 part given back with it (2208), and whether it returned everything left of the bill.
    insurance_fen: int = Field(default=0, ge=0, sa_column_kwargs={"server_default": "0"})
    final: bool = Field(default=False, sa_column_kwargs={"server_default": "false"})
    failure: str | None = None


class RefundNegotiation(SQLModel, table=True):
    """A special refund's negotiation (8.4.2): each answer of the hospital, the supplier and the courier, as recorded."""

    __tablename__ = "refund_negotiations"

    id: int | None = Field(default=None, primary_key=True)
    refund_id: str = Field(foreign_key="refunds.id", index=True, max_length=100)
    party: str = Field(max_length=16)
    agreed: bool
    amount_fen: int = Field(ge=0)
    note: str = ""
    recorded_by: str = Field(max_length=40)
    recorded_at: datetime = Timestamp(default_now=True)

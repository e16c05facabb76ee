"""Bills and refunds. `refunded_fen` never passes `amount_fen` (a check constraint holds it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint
from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


class Bill(SQLModel, table=True):
    __tablename__ = "bills"
    __table_args__ = (CheckConstraint("refunded_fen <= amount_fen", name="bill_refund_cap"),)

    id: str = Field(primary_key=True, max_length=80)
    kind: str = Field(max_length=16)
    ref_id: str = Field(max_length=80, index=True)
    patient_id: str = Field(foreign_key="patients.id", index=True)
    amount_fen: int = Field(ge=0)
    refunded_fen: int = Field(default=0, ge=0)
    description: str = ""
    status: str = Field(max_length=16, index=True)
    channel: str = Field(max_length=16)
    pay_url: str | None = None
    transaction_id: str | None = Field(default=None, max_length=64)
    pay_deadline: datetime | None = Timestamp(nullable=True)
    paid_at: datetime | None = Timestamp(nullable=True)
    closed_at: datetime | None = Timestamp(nullable=True)
    created_at: datetime = Timestamp(default_now=True)


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

"""State of the sandbox adapters. They keep it in PostgreSQL so it outlives a killed worker, like a real peer would."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.tables._types import Json, Timestamp


class SandboxCall(SQLModel, table=True):
    """Every call a sandbox adapter received, deduplicated on (system, operation, idempotency key)."""

    __tablename__ = "sandbox_calls"
    __table_args__ = (UniqueConstraint("system", "operation", "idempotency_key", name="sandbox_call_once"),)

    id: int | None = Field(default=None, primary_key=True)
    system: str = Field(max_length=16)
    operation: str = Field(max_length=32)
    idempotency_key: str = Field(max_length=200)
    request: dict[str, Any] = Json()
    response: dict[str, Any] = Json()
    received: int = 1
    created_at: datetime = Timestamp(default_now=True)


class SandboxHisDiagnosis(SQLModel, table=True):
    """Offline diagnoses the sandbox HIS knows, keyed by the SM3 digest of the ID-card number."""

    __tablename__ = "sandbox_his_diagnoses"

    encounter_id: str = Field(primary_key=True, max_length=40)
    id_card_digest: str = Field(max_length=64, index=True)
    disease_code: str = Field(max_length=32)
    disease_name: str = Field(max_length=64)
    diagnosed_at: datetime = Timestamp()
    department: str = Field(max_length=64)
    doctor_name: str = Field(max_length=32)


class SandboxPayOrder(SQLModel, table=True):
    __tablename__ = "sandbox_pay_orders"

    out_trade_no: str = Field(primary_key=True, max_length=80)
    amount_fen: int
    description: str = ""
    status: str = Field(max_length=16)
    transaction_id: str | None = Field(default=None, max_length=64)
    charges: int = 0
    paid_at: datetime | None = Timestamp(nullable=True)
    created_at: datetime = Timestamp(default_now=True)


class SandboxRefund(SQLModel, table=True):
    __tablename__ = "sandbox_refunds"

    out_refund_no: str = Field(primary_key=True, max_length=100)
    out_trade_no: str = Field(foreign_key="sandbox_pay_orders.out_trade_no", index=True)
    amount_fen: int
    status: str = Field(max_length=16)
    refund_id: str = Field(max_length=64)
    created_at: datetime = Timestamp(default_now=True)


class SandboxShipment(SQLModel, table=True):
    __tablename__ = "sandbox_shipments"

    waybill_no: str = Field(primary_key=True, max_length=64)
    order_ref: str = Field(max_length=80, unique=True)
    status: str = Field(max_length=16)
    events: list[Any] = Json(default=[])
    created_at: datetime = Timestamp(default_now=True)

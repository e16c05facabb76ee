"""Exams (检查/检验): the hospital's exam catalogue, each exam's daily capacity, and the exam orders with their exams
as the ExamOrder workflow keeps them (the read model lists come from).

A day's capacity row is made from the catalogue's `daily_capacity` when the first exam is booked on it; its `booked`
count moves only in the statements of activities/exams.py, which the check constraint keeps within the capacity.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint
from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


class ExamCatalogueEntry(SQLModel, table=True):
    __tablename__ = "exam_catalogue"
    # A price above zero: an order's bill is never empty.
    __table_args__ = (
        CheckConstraint("category IN ('lab', 'exam')", name="exam_category"),
        CheckConstraint("price_fen > 0", name="exam_price_positive"),
    )

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=64)
    # 检验 (lab: samples) or 检查 (exam: on the patient, by a device or a person).
    category: str = Field(max_length=8)
    price_fen: int = Field(gt=0)
    # The department that performs it (执行科室) and the campus (院区) where, for the patient's directions.
    department: str = Field(max_length=64)
    campus: str | None = Field(default=None, max_length=16)
    # Whether the patient books a day for it; how many a day it takes then.
    needs_booking: bool = False
    daily_capacity: int = Field(default=0, ge=0)
    # What the patient does before it (e.g. 空腹8小时).
    preparation: str = ""
    active: bool = Field(default=True, sa_column_kwargs={"server_default": "true"})


class ExamCapacity(SQLModel, table=True):
    __tablename__ = "exam_capacity"
    __table_args__ = (CheckConstraint("booked >= 0 AND booked <= capacity", name="exam_capacity_bounds"),)

    exam_code: str = Field(primary_key=True, foreign_key="exam_catalogue.code", max_length=32)
    day: date = Field(primary_key=True)
    capacity: int = Field(ge=0)
    booked: int = Field(default=0, ge=0)


class ExamOrder(SQLModel, table=True):
    __tablename__ = "exam_orders"

    id: str = Field(primary_key=True, max_length=80)
    visit_id: str = Field(foreign_key="visits.id", index=True)
    patient_id: str = Field(foreign_key="patients.id", index=True)
    doctor_id: str = Field(foreign_key="doctors.id", index=True)
    stage: str = Field(max_length=24, index=True)
    total_fen: int = Field(ge=0)
    refunded_fen: int = Field(default=0, ge=0)
    bill_id: str = Field(max_length=80)
    note: str = ""
    paid_at: datetime | None = Timestamp(nullable=True)
    valid_until: datetime | None = Timestamp(nullable=True)
    end_reason: str | None = None
    created_at: datetime = Timestamp(default_now=True)
    updated_at: datetime = Timestamp(default_now=True)


class ExamItem(SQLModel, table=True):
    __tablename__ = "exam_items"

    order_id: str = Field(primary_key=True, foreign_key="exam_orders.id", max_length=80)
    item_no: int = Field(primary_key=True, ge=1)
    exam_code: str = Field(foreign_key="exam_catalogue.code", max_length=32)
    name: str = Field(max_length=64)
    price_fen: int = Field(ge=0)
    needs_booking: bool
    department: str = Field(max_length=64)
    campus: str | None = Field(default=None, max_length=16)
    status: str = Field(max_length=16)
    # The day whose capacity this exam holds: written only with the capacity count, in one transaction.
    booked_day: date | None = None
    performed_at: datetime | None = Timestamp(nullable=True)
    performed_by: str | None = Field(default=None, max_length=40)
    refund_id: str | None = Field(default=None, max_length=100)
    cancel_reason: str | None = None

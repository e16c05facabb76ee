"""Exams (检查/检验): the catalogue, a day's places, and what doctors, patients and the hospital send about orders."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from models.exam import MAX_EXAMS_PER_ORDER, ExamItemStatus, ExamOrderStage

ItemNo = Annotated[int, Field(ge=1, le=MAX_EXAMS_PER_ORDER)]


class ExamCatalogueOut(BaseModel):
    code: str
    name: str
    category: str = Field(description="lab 检验；exam 检查")
    price_fen: int
    department: str = Field(description="执行科室")
    campus: str | None = Field(description="院区")
    needs_booking: bool = Field(description="是否需要预约检查日期")
    daily_capacity: int = Field(description="需预约的项目每日可约数量")
    preparation: str = Field(description="检查前须知")


class ExamDayOut(BaseModel):
    day: date
    capacity: int
    booked: int
    remaining: int


class OrderExamsIn(BaseModel):
    exam_codes: list[str] = Field(
        min_length=1, max_length=MAX_EXAMS_PER_ORDER, description="检查项目编码（见检查目录）", examples=[["LAB-CBC"]]
    )
    note: str = Field(default="", max_length=500, description="检查目的或给检查科室的说明")


class BookExamIn(BaseModel):
    day: date = Field(description="检查日期（北京时间）")


class CancelExamsIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500, examples=["症状已缓解，暂不检查"])
    item_nos: list[ItemNo] = Field(
        default=[],
        max_length=MAX_EXAMS_PER_ORDER,
        description="取消的检查项目序号；不填为全部未执行的项目（未缴费时为整单）",
    )


class HospitalCancelExamsIn(CancelExamsIn):
    reason_code: Literal["equipment_unavailable", "schedule_changed", "clinically_unsuitable"] = Field(
        description="equipment_unavailable 设备故障或停用；schedule_changed 检查科室调整排班；"
        "clinically_unsuitable 经评估不宜检查"
    )


class ExamItemOut(BaseModel):
    item_no: int
    code: str
    name: str
    price_fen: int
    needs_booking: bool
    department: str
    campus: str | None
    status: ExamItemStatus
    booked_day: date | None
    performed_at: datetime | None
    refund_id: str | None
    cancel_reason: str | None


class ExamOrderSummary(BaseModel):
    order_id: str
    visit_id: str
    patient_id: str
    doctor_id: str
    stage: ExamOrderStage
    total_fen: int
    refunded_fen: int
    bill_id: str
    note: str
    valid_until: datetime | None
    created_at: datetime
    items: list[ExamItemOut]

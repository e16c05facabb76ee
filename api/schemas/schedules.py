"""Admin shapes for schedules (排班) and their slots, the batch import report, and extra slots (加号)."""

from __future__ import annotations

from datetime import date, datetime, time

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.catalogue import ServiceType
from api.services.schedule_rules import MAX_CAPACITY, MAX_EXTRA_CAP, MAX_FEE_FEN, MAX_NOTE, SLOT_MINUTES

_TIME_FORMAT = "时间应为 HH:MM（北京时间，不带时区和秒）"


def _local_minute(value: time | None) -> time | None:
    if value is not None and (value.tzinfo is not None or value.second or value.microsecond):
        raise ValueError(_TIME_FORMAT)
    return value


class ScheduleIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "doctor_id": "doc-1",
                    "day": "2026-03-02",
                    "start": "08:30",
                    "end": "10:00",
                    "slot_minutes": 15,
                    "capacity": 6,
                    "service_type": "text",
                    "disease_code": "TCM-PW-001",
                    "fee_fen": 5000,
                    "extra_cap": 2,
                }
            ]
        },
    )

    doctor_id: str = Field(min_length=1, max_length=40)
    day: date = Field(description="出诊日期（北京时间）")
    start: time = Field(description="开始时间 HH:MM（北京时间）")
    end: time = Field(description="结束时间 HH:MM（北京时间）")
    slot_minutes: int = Field(ge=SLOT_MINUTES[0], le=SLOT_MINUTES[1], description="每个号的时长（分钟）")
    capacity: int = Field(ge=1, le=MAX_CAPACITY, description="号数")
    service_type: ServiceType = Field(default="text", description="问诊方式")
    disease_code: str = Field(min_length=1, max_length=32, description="号源的病种属性")
    fee_fen: int | None = Field(
        default=None, ge=0, le=MAX_FEE_FEN, description="挂号费（分）；省略则按医生定价或职称收费标准"
    )
    extra_cap: int = Field(default=0, ge=0, le=MAX_EXTRA_CAP, description="可加号数上限")
    note: str = Field(default="", max_length=MAX_NOTE)

    _minutes = field_validator("start", "end")(_local_minute)


class SchedulePatch(BaseModel):
    """Fields to change; omitted (or null) ones stay. Time, slots, fee, service type and disease change only while
    no slot of the session is held or booked."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"capacity": 8, "fee_fen": 6000}]})

    start: time | None = None
    end: time | None = None
    slot_minutes: int | None = Field(default=None, ge=SLOT_MINUTES[0], le=SLOT_MINUTES[1])
    capacity: int | None = Field(default=None, ge=1, le=MAX_CAPACITY)
    service_type: ServiceType | None = None
    disease_code: str | None = Field(default=None, min_length=1, max_length=32)
    fee_fen: int | None = Field(default=None, ge=0, le=MAX_FEE_FEN)
    extra_cap: int | None = Field(default=None, ge=0, le=MAX_EXTRA_CAP)
    note: str | None = Field(default=None, max_length=MAX_NOTE)

    _minutes = field_validator("start", "end")(_local_minute)


class SlotCounts(BaseModel):
    open: int = Field(description="可预约（含支付时限已过的锁号）")
    held: int = Field(description="锁号待支付")
    booked: int = Field(description="已预约")
    closed: int = Field(description="已关闭")
    extra: int = Field(description="其中加号数")


class ScheduleOut(BaseModel):
    id: str = Field(examples=["doc-1-20260302-0830"])
    doctor_id: str
    doctor_name: str
    department_id: str
    day: date
    starts_at: datetime
    ends_at: datetime
    slot_minutes: int
    capacity: int
    extra_cap: int
    fee_fen: int
    service_type: str
    disease_code: str
    status: str = Field(description="published 已发布 / cancelled 已停诊 / substituted 已替诊")
    substitute_doctor_id: str | None
    note: str
    created_at: datetime
    updated_at: datetime
    counts: SlotCounts


class AdminSlotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    schedule_id: str | None
    starts_at: datetime
    ends_at: datetime
    fee_fen: int
    status: str = Field(description="open / held / booked / closed")
    held_until: datetime | None
    patient_id: str | None = Field(description="锁号或预约的患者")
    is_extra: bool
    reserved_for: str | None = Field(description="加号指定的患者：仅该患者可预约")
    added_by: str | None = Field(description="加号人（用户编号）")
    added_reason: str | None = Field(description="加号原因")
    created_at: datetime


class ScheduleDetail(ScheduleOut):
    slots: list[AdminSlotOut]


class RowError(BaseModel):
    line: int = Field(description="文件中的行号（表头为第 1 行）", examples=[3])
    column: str | None = Field(description="出错的列", examples=["date"])
    code: str = Field(examples=["PAST_DATE"])
    message: str = Field(examples=["出诊时间 2024-01-01 08:30–10:00 已过，不能排班"])


class ImportReport(BaseModel):
    dry_run: bool
    ok: bool = Field(description="全部行均有效（试导入）或已全部导入")
    rows: int = Field(description="数据行数")
    schedules: int = Field(description="将要（或已）发布的排班数")
    slots: int = Field(description="将要（或已）生成的号源数")
    errors: list[RowError]


class ExtraSlotIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "老患者病情需要，今日加诊", "patient_id": "pat-demo"}]},
    )

    reason: str = Field(min_length=1, max_length=200, description="加号原因（必填）")
    patient_id: str | None = Field(
        default=None, min_length=1, max_length=40, description="指定患者：该号仅此患者可预约，并通知该患者"
    )
    starts_at: datetime | None = Field(default=None, description="开始时间（带时区）；省略则排在本场最后一个号之后")

    @field_validator("starts_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("时间须带时区，如 2026-03-02T10:00:00+08:00")
        return value


class ExtraSlotOut(AdminSlotOut):
    doctor_id: str
    service_type: str
    disease_code: str

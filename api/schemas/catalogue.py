"""Public reference data: departments, doctors, their slots, diseases, the service information and the notices."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.tables import Department, Doctor

# 问诊方式: 图文 / 电话 / 视频.
ServiceType = Literal["text", "phone", "video"]
SERVICE_TYPE_NAMES: dict[str, str] = {"text": "图文", "phone": "电话", "video": "视频"}

# Professional titles (职称) that fee standards are set by (8.6.1 c), highest first.
DoctorTitle = Literal["主任医师", "副主任医师", "主治医师", "医师"]
DOCTOR_TITLES: tuple[str, ...] = ("主任医师", "副主任医师", "主治医师", "医师")


class DepartmentOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "dep-spleen",
                    "name": "脾胃病科",
                    "description": "慢性胃炎、功能性消化不良等",
                    "subject_code": "50.01",
                    "subject_name": "内科专业",
                }
            ]
        },
    )

    id: str
    name: str
    description: str
    subject_code: str = Field(description="诊疗科目代码（《医疗机构诊疗科目名录》）")
    subject_name: str = Field(description="诊疗科目名称")

    @classmethod
    def of(cls, department: Department, subjects: Mapping[str, str]) -> DepartmentOut:
        """`department` is within `subjects` (the public catalogue lists no other)."""
        return cls(
            id=department.id,
            name=department.name,
            description=department.description,
            subject_code=department.subject_code,
            subject_name=subjects[department.subject_code],
        )


class DoctorOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "doc-li",
                    "name": "李时",
                    "title": "主任医师",
                    "department_id": "dep-spleen",
                    "department_name": "脾胃病科",
                    "specialties": "慢性胃炎、失眠",
                    "introduction": "从事中医内科临床三十年。",
                    "photo_url": "https://static.example.org/doctors/doc-li.jpg",
                    "service_fees": {"text": 5000, "video": 10000},
                    "active": True,
                }
            ]
        }
    )

    id: str
    name: str
    title: str
    department_id: str
    department_name: str
    specialties: str
    introduction: str
    photo_url: str | None = Field(description="照片地址")
    service_fees: dict[str, int] = Field(description='开通的问诊方式及其费用（分），如 {"text": 5000}')
    active: bool = Field(description="false：医生已停用，不再接受预约")

    @classmethod
    def of(cls, doctor: Doctor, department_name: str) -> DoctorOut:
        return cls(
            id=doctor.id,
            name=doctor.name,
            title=doctor.title,
            department_id=doctor.department_id,
            department_name=department_name,
            specialties=doctor.specialties,
            introduction=doctor.introduction,
            photo_url=doctor.photo_url,
            service_fees=doctor.service_fees or {},
            active=doctor.active,
        )


class SlotOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "doc-li-20250301-0900-0900",
                    "schedule_id": "doc-li-20250301-0900",
                    "starts_at": "2025-03-01T01:00:00Z",
                    "ends_at": "2025-03-01T01:15:00Z",
                    "fee_fen": 5000,
                    "service_type": "text",
                    "disease_code": "BNG010",
                    "status": "open",
                    "is_extra": False,
                    "reserved": False,
                }
            ]
        }
    )

    id: str
    schedule_id: str | None = Field(description="所属排班")
    starts_at: datetime
    ends_at: datetime
    fee_fen: int = Field(description="挂号费（分）")
    service_type: str = Field(description="问诊方式：text 图文 / phone 电话 / video 视频")
    disease_code: str
    status: Literal["open", "unavailable"] = Field(
        description="open 可预约；unavailable 已被预约、锁定、为指定患者保留、已停诊或已过时"
    )
    is_extra: bool = Field(description="是否为医生追加的号源（加号）")
    reserved: bool = Field(description="是否为指定患者保留的加号（仅该患者可预约）")


class DiseaseOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [{"code": "BNG010", "name": "胃脘痛", "department_id": "dep-spleen"}]},
    )

    code: str
    name: str
    department_id: str


class ScopeDepartment(BaseModel):
    id: str
    name: str
    diseases: list[DiseaseOut] = Field(description="该科室可在线复诊的病种")


class ServiceTypeInfo(BaseModel):
    code: str = Field(examples=["text"])
    name: str = Field(examples=["图文问诊"])


class FeeStandard(BaseModel):
    title: str = Field(examples=["主任医师"])
    fees: dict[str, int] = Field(description="各问诊方式的收费标准（分）", examples=[{"text": 5000, "video": 10000}])


class ServiceScope(BaseModel):
    summary: str
    service_types: list[ServiceTypeInfo]
    departments: list[ScopeDepartment]
    fee_standards: list[FeeStandard] = Field(description="按职称的收费标准（医生另有定价的以医生定价为准）")


class Admission(BaseModel):
    revisit_window_days: int = Field(description="线下确诊后多少天内可在线复诊")
    conditions: list[str]


class NoShowRule(BaseModel):
    limit: int = Field(description="爽约次数")
    window_days: int = Field(description="统计天数")
    block_days: int = Field(description="暂停预约天数")


class BookingRules(BaseModel):
    pay_window_minutes: int = Field(description="预约后须在多少分钟内支付挂号费")
    cancel_policy: str
    no_show: NoShowRule
    rules: list[str]


class ServiceInfo(BaseModel):
    """在线复诊服务范围、准入条件与预约挂号规则（8.1.1.1、8.6.3 g）。"""

    scope: ServiceScope
    admission: Admission
    booking_rules: BookingRules


class NoticeOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "chg-1",
                    "kind": "substitution",
                    "kind_name": "替诊",
                    "schedule_id": "doc-li-20250301-0830",
                    "doctor_id": "doc-li",
                    "doctor_name": "李时",
                    "department_name": "脾胃病科",
                    "day": "2025-03-01",
                    "starts_at": "2025-03-01T00:30:00Z",
                    "ends_at": "2025-03-01T02:00:00Z",
                    "substitute_doctor_id": "doc-wang",
                    "substitute_doctor_name": "王清",
                    "message": "李时主任医师 3月1日 08:30–10:00 的出诊改由王清主治医师替诊。",
                    "announced_at": "2025-02-27T08:00:00Z",
                }
            ]
        }
    )

    id: str
    kind: str = Field(description="leave 停诊 / substitution 替诊")
    kind_name: str = Field(description="停诊 / 替诊")
    schedule_id: str
    doctor_id: str
    doctor_name: str
    department_name: str
    day: date
    starts_at: datetime
    ends_at: datetime
    substitute_doctor_id: str | None
    substitute_doctor_name: str | None
    message: str
    announced_at: datetime

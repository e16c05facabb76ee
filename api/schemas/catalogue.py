"""Public reference data: departments, doctors, their slots, diseases."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DepartmentOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [{"id": "dep-spleen", "name": "脾胃病科", "description": "慢性胃炎、功能性消化不良等"}]
        },
    )

    id: str
    name: str
    description: str


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


class SlotOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "slot-1",
                    "starts_at": "2025-03-01T01:00:00Z",
                    "ends_at": "2025-03-01T01:15:00Z",
                    "fee_fen": 5000,
                    "service_type": "text",
                    "disease_code": "BNG010",
                    "status": "open",
                }
            ]
        }
    )

    id: str
    starts_at: datetime
    ends_at: datetime
    fee_fen: int = Field(description="挂号费（分）")
    service_type: str = Field(description="问诊方式：text 图文 / video 视频 等")
    disease_code: str
    status: Literal["open", "unavailable"] = Field(description="open 可预约；unavailable 已被预约、锁定或已过时")


class DiseaseOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [{"code": "BNG010", "name": "胃脘痛", "department_id": "dep-spleen"}]},
    )

    code: str
    name: str
    department_id: str

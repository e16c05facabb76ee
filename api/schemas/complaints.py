"""Shapes of patients' complaints about their orders (8.6.7 e)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from models.complaint import ComplaintCategory, ComplaintStatus, ComplaintSubject


class ComplaintIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "subject_type": "prescription",
                    "subject_id": "visit-1-rx1",
                    "category": "delivery",
                    "text": "药品送达时包装破损，部分饮片洒出。",
                }
            ]
        },
    )

    subject_type: ComplaintSubject = Field(description="visit 在线复诊 / prescription 处方")
    subject_id: str = Field(min_length=1, max_length=80, description="被投诉的挂号或处方编号（本人的）")
    category: ComplaintCategory = Field(
        description="service 服务态度 / diagnosis 诊疗质量 / medication 药品质量 / delivery 配送 / billing 收费 / other 其他"
    )
    text: str = Field(min_length=1, max_length=1000, description="投诉内容")


class ComplaintResponseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    response: str = Field(
        min_length=1,
        max_length=1000,
        description="对投诉的处理结果与反馈（患者可见）",
        examples=["已联系配送方核实，破损药品将于明日补发，给您带来不便深表歉意。"],
    )


class ComplaintOut(BaseModel):
    id: str
    patient_id: str
    subject_type: ComplaintSubject
    subject_id: str
    category: ComplaintCategory
    category_name: str = Field(description="投诉类别名称")
    text: str
    status: ComplaintStatus = Field(description="open 待处理 / answered 已答复")
    response: str | None = Field(description="医院的处理结果与反馈")
    responded_by: str | None = Field(description="答复人（用户编号）")
    responded_at: datetime | None
    escalated_at: datetime | None = Field(description="超过答复时限、提交督办的时间")
    created_at: datetime

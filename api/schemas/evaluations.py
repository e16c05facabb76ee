"""Shapes of evaluations (8.6.7 a–d)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class EvaluationIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"doctor_rating": 5, "department_rating": 5, "hospital_rating": 4, "comment": "李医生问诊很仔细。"}
            ]
        },
    )

    doctor_rating: int = Field(ge=1, le=5, description="对医生的满意度（1～5 星）")
    department_rating: int = Field(ge=1, le=5, description="对科室的满意度（1～5 星）")
    hospital_rating: int = Field(ge=1, le=5, description="对医院的满意度（1～5 星）")
    comment: str = Field(default="", max_length=500, description="评价内容")


class EvaluationOut(BaseModel):
    """An evaluation as its patient, the doctor evaluated and the admins see it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    visit_id: str
    doctor_id: str
    department_id: str
    doctor_rating: int
    department_rating: int
    hospital_rating: int
    comment: str
    visibility: Literal["public", "hidden"] = Field(description="public 公开显示 / hidden 不公开（不删除）")
    hidden_reason: str | None
    handling: Literal["none", "pending", "handled"] = Field(
        description="差评跟进：none 无需、pending 待处理、handled 已处理"
    )
    handled_by: str | None
    handled_at: datetime | None
    handling_note: str | None
    created_at: datetime


class PublicEvaluationOut(BaseModel):
    """What anyone sees of a public evaluation: the ratings and the comment, never who wrote it."""

    model_config = ConfigDict(from_attributes=True)

    doctor_rating: int
    department_rating: int
    hospital_rating: int
    comment: str
    created_at: datetime


class RatingSummary(BaseModel):
    count: int
    doctor_rating: float | None = Field(description="医生满意度平均分（一位小数）")
    department_rating: float | None
    hospital_rating: float | None
    stars: dict[int, int] = Field(description="医生满意度各星级的评价数")


class DoctorEvaluationsOut(BaseModel):
    doctor_id: str
    summary: RatingSummary
    items: list[PublicEvaluationOut]
    total: int
    limit: int
    offset: int


class VisibilityIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    visibility: Literal["public", "hidden"]
    reason: str | None = Field(
        default=None,
        max_length=500,
        description="不公开的理由（必填）：评价不得删除，只有在有证据否定其真实客观性时才可不公开显示",
    )

    @model_validator(mode="after")
    def _hiding_needs_a_reason(self) -> VisibilityIn:
        if self.visibility == "hidden" and not self.reason:
            raise ValueError("不公开显示评价须注明理由")
        return self


class HandlingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: str = Field(min_length=1, max_length=1000, description="处理情况")

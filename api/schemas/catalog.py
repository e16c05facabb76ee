"""Shapes of the drug catalogue and its changes (8.6.2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.catalog import ChangeKind, ChangeStatus, ControlClass, HerbFields


class HerbOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str = Field(description="通用名")
    code: str | None = Field(description="药品代码")
    spec: str
    unit: str
    price_fen_per_100g: int
    active: bool = Field(description="false：已禁用，不能开具")
    control_class: ControlClass | None
    transport_note: str | None


class ChangeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "kind": "add",
                    "herb_name": "佛手",
                    "fields": {"code": "YP0301", "spec": "饮片", "unit": "g", "price_fen_per_100g": 450},
                    "reason": "临床科室申请增加",
                }
            ]
        },
    )

    kind: ChangeKind = Field(description="add 新增 / update 变更 / disable 禁用 / enable 启用")
    herb_name: str = Field(min_length=1, max_length=40, description="饮片通用名")
    fields: HerbFields = Field(default_factory=HerbFields, description="新增或变更的字典数据")
    reason: str = Field(min_length=1, max_length=500, description="变更理由")

    @model_validator(mode="after")
    def _fields_fit_the_kind(self) -> ChangeIn:
        given = self.fields.model_dump(exclude_none=True)
        if self.kind is ChangeKind.ADD and "price_fen_per_100g" not in given:
            raise ValueError("新增饮片须填写价格")
        if self.kind is ChangeKind.UPDATE and not given:
            raise ValueError("变更须至少修改一项字典数据")
        if self.kind in (ChangeKind.DISABLE, ChangeKind.ENABLE) and given:
            raise ValueError("禁用或启用不修改字典数据")
        return self


class ChangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: ChangeKind
    herb_name: str
    fields: dict[str, Any]
    before: dict[str, Any] | None = Field(description="发布时该饮片原来的字典数据（新增为空）")
    reason: str
    proposed_by: str = Field(description="提交变更的药师")
    status: ChangeStatus
    decided_by: str | None
    decided_at: datetime | None
    note: str | None
    created_at: datetime


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    approve: bool
    note: str = Field(default="", max_length=500, description="审核意见（驳回时必填）")

    @model_validator(mode="after")
    def _rejection_says_why(self) -> DecisionIn:
        if not self.approve and not self.note:
            raise ValueError("驳回须填写审核意见")
        return self

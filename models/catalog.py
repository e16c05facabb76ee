"""The drug catalogue (药品目录管理, 8.6.2): pharmacists propose, a senior pharmacist approves, then it is published.

A pharmacist holding `catalog.maintain` proposes adding a 饮片, changing its dictionary data (code, specification,
unit, price, control class, transport note), disabling or enabling it, with a reason. The `CatalogChange` flow waits
for a pharmacist holding `catalog.approve` other than the proposer; approval publishes the change in one transaction
and records what the entry was before, rejection leaves the catalogue as it was. Narcotic and psychotropic drugs are
never listed (the rule engine's 禁止网上开具 and 禁用 materials are refused when proposed).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class ChangeKind(StrEnum):
    ADD = "add"
    UPDATE = "update"
    DISABLE = "disable"
    ENABLE = "enable"


class ChangeStatus(StrEnum):
    PENDING = "pending"
    PUBLISHED = "published"
    REJECTED = "rejected"


class ControlClass(StrEnum):
    """管制分类 a listed 饮片 may carry; narcotic and psychotropic drugs are not listable at all."""

    TOXIC = "toxic"  # 毒性中药饮片
    PRECURSOR = "precursor"  # 易制毒
    SPECIAL = "special"  # 其他特殊管理


KIND_NAMES = {ChangeKind.ADD: "新增", ChangeKind.UPDATE: "变更", ChangeKind.DISABLE: "禁用", ChangeKind.ENABLE: "启用"}


class HerbFields(BaseModel):
    """Dictionary data a change sets; None leaves a field as it is (an addition needs the price)."""

    code: str | None = Field(
        default=None, min_length=1, max_length=32, pattern=r"^[0-9A-Za-z.-]+$", description="药品代码"
    )
    spec: str | None = Field(default=None, min_length=1, max_length=32, description="规格")
    unit: str | None = Field(default=None, min_length=1, max_length=8, description="单位")
    price_fen_per_100g: int | None = Field(default=None, ge=0, le=10_000_000, description="价格（分/100 克）")
    control_class: ControlClass | None = Field(default=None, description="管制分类")
    transport_note: str | None = Field(default=None, max_length=100, description="运输特殊要求")


class CatalogChangeInput(BaseModel):
    change_id: str
    herb_name: str
    kind: ChangeKind
    # The proposing pharmacist (notified of the decision) and their user id (who may not approve it).
    proposer_id: str
    proposer_user_id: str
    summary: str


class CatalogDecision(BaseModel):
    approver_user_id: str
    approve: bool
    note: str = Field(default="", max_length=500)


class CatalogChangeState(BaseModel):
    status: ChangeStatus = ChangeStatus.PENDING
    decided_by: str | None = None
    note: str | None = None

"""Shapes of the supervision data upload (8.6.6): each record's last answer, each day's counts, and a new upload."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from models.supervision import SupervisionKind, UploadTotals


class SupervisionRecordOut(BaseModel):
    """What the platform last answered for one record, and which version (digest) it answered for."""

    model_config = ConfigDict(from_attributes=True)

    kind: SupervisionKind
    record_id: str = Field(description="业务编号（复诊为就诊号，处方为处方号）")
    day: date = Field(description="最近一次上传所属日期（北京时间）")
    status: str = Field(description="accepted（已接收）或 rejected（被拒绝）")
    code: str | None = None
    reason: str | None = Field(default=None, description="监管平台的拒绝原因")
    digest: str = Field(description="所上传版本的 SM3 摘要")
    platform_ref: str = Field(description="监管平台的上传受理号")
    sends: int = Field(description="累计上传次数")
    uploaded_at: datetime


class SupervisionDayOut(BaseModel):
    day: date
    kind: SupervisionKind
    accepted: int
    rejected: int
    last_uploaded_at: datetime


class UploadIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"day": "2026-11-25"}]})

    day: date = Field(description="上传哪一天（北京时间）变更的数据；不能晚于今天")
    kinds: list[SupervisionKind] = Field(
        default_factory=lambda: list(SupervisionKind), min_length=1, max_length=2, description="数据类别，默认全部"
    )
    resend: bool = Field(default=False, description="重新上传当日全部记录，包括监管平台已有相同版本的记录")


class UploadOut(BaseModel):
    day: date
    workflow_ids: list[str]


class UploadRunOut(BaseModel):
    """The latest upload of one kind for one day: `none` when the day was never uploaded; `totals` once it
    completed."""

    kind: SupervisionKind
    workflow_id: str
    status: str = Field(description="none、running、completed、failed、terminated、cancelled 或 timed_out")
    totals: UploadTotals | None = None
    started_at: datetime | None = None
    closed_at: datetime | None = None

"""Records patients upload as evidence of an offline diagnosis (复诊资料, 8.1.2.2 a) and the doctor's review."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from models.revisit import RevisitDecision

UploadStatus = Literal["pending", "approved", "rejected"]


class UploadOut(BaseModel):
    upload_id: str
    patient_id: str
    disease_code: str
    kind: Literal["image", "pdf"]
    content_type: str = Field(examples=["application/pdf"])
    size_bytes: int
    sm3: str = Field(description="文件内容（明文）的 SM3 摘要，十六进制；已写入存证账本")
    ledger_seq: int | None = Field(description="存证账本中的条目序号")
    visited_on: date = Field(description="资料记载的线下就诊日期")
    status: UploadStatus = Field(description="pending：待审核；approved：审核通过；rejected：未通过")
    review_reason: str | None
    reviewed_at: datetime | None
    uploaded_at: datetime
    url: str = Field(description="下载地址（需登录，每次读取均记录审计日志）")


class UploadCreated(BaseModel):
    upload: UploadOut
    decision: RevisitDecision = Field(description="该病种复诊预判的当前结论；无其他依据时为 pending_review")


class ReviewIn(BaseModel):
    approve: bool
    reason: str = Field(default="", max_length=500, description="驳回时必填", examples=["图片模糊，无法辨认诊断"])


class ReviewOut(BaseModel):
    upload: UploadOut
    decision: RevisitDecision

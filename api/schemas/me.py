"""The caller's own account: profile, identity submission, agreements."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.consent_documents import ConsentDocumentId
from models.common import Role

Verification = Literal["unsubmitted", "verifying", "verified", "failed"]


class ConsentStatus(BaseModel):
    document: ConsentDocumentId
    title: str = Field(examples=["互联网诊疗知情同意书"])
    current_version: str = Field(examples=["1.0"])
    accepted: bool = Field(description="是否已同意当前版本")
    accepted_at: datetime | None = Field(default=None, description="同意当前版本的时间")


class PatientProfile(BaseModel):
    id: str = Field(examples=["p-10001"])
    name_masked: str | None = Field(default=None, examples=["*三"])
    phone_masked: str | None = Field(default=None, examples=["138****8000"])
    id_card_masked: str | None = Field(default=None, examples=["110***********1234"])
    verification: Verification = Field(description="实名认证状态", examples=["verified"])
    verified: bool
    verified_at: datetime | None = None
    verify_failure: str | None = Field(default=None, description="认证未通过的原因")
    consents: list[ConsentStatus]
    consents_complete: bool = Field(description="是否已同意全部协议的当前版本")


class MeOut(BaseModel):
    user_id: str = Field(examples=["u-10001"])
    role: Role
    display_name: str = Field(examples=["张三"])
    patient: PatientProfile | None = Field(default=None, description="仅患者账号")
    email_masked: str | None = Field(
        default=None,
        description="仅员工账号：接收邮件通知（如每日对账结果）的地址，部分隐藏",
        examples=["c***@hospital.cn"],
    )


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: ConsentDocumentId = Field(examples=["informed_consent"])
    version: str = Field(min_length=1, max_length=16, examples=["1.0"])


class ConsentsOut(BaseModel):
    consents: list[ConsentStatus]
    complete: bool


class IdentityIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"name": "张三", "id_card_no": "11010519491231002X", "phone": "13800138000", "address": "北京市东城区"}
            ]
        },
    )

    name: str = Field(min_length=1, max_length=32, description="真实姓名")
    id_card_no: str = Field(max_length=32, description="18 位居民身份证号码")
    phone: str = Field(pattern=r"^1\d{10}$", description="手机号")
    address: str | None = Field(default=None, max_length=200, description="常用收货地址")
    liveness_token: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="活体检测凭证：医院启用了活体检测与人脸比对时必填（由客户端活体检测 SDK 取得）",
    )


class IdentityAccepted(BaseModel):
    status: Literal["verifying"] = "verifying"


class ConsentDocumentOut(BaseModel):
    """Named like `ConsentIn`, so a client can send back `document` and `version` as listed."""

    document: ConsentDocumentId
    version: str = Field(examples=["1.0"])
    title: str = Field(examples=["互联网诊疗知情同意书"])
    text: str


class EmailIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(
        max_length=254, description="接收邮件通知的地址；null 或空串表示删除", examples=["caiwu@hospital.cn"]
    )


class EmailOut(BaseModel):
    user_id: str
    email_masked: str | None = Field(description="部分隐藏的地址；未设置时为空", examples=["c***@hospital.cn"])

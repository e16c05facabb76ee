"""Enrolling second factors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.auth import ChallengeId, MfaMethod, OneTimeCode


class MfaStatusOut(BaseModel):
    methods: list[MfaMethod] = Field(description="已启用的验证方式")
    required: bool = Field(description="本账号是否必须启用双因素认证")
    totp_pending: bool = Field(description="是否有尚未确认的验证器绑定")


class TotpEnrolmentOut(BaseModel):
    secret: str = Field(description="Base32 密钥，无法扫码时手动输入", examples=["JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"])
    otpauth_uri: str = Field(description="otpauth:// 链接，生成二维码供验证器应用扫描")


class CodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: OneTimeCode


class SmsEnrolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(pattern=r"^1\d{10}$", description="接收验证码的手机号")


class SmsEnrolmentOut(BaseModel):
    challenge_id: str
    sent_to: str = Field(examples=["138****8000"])
    resend_after: int = Field(examples=[60])


class SmsConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    challenge_id: ChallengeId
    code: OneTimeCode

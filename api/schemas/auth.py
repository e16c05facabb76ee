"""Sign-in shapes: tokens, the second step, password change."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.password_policy import MAX_LENGTH

MfaMethod = Literal["totp", "sms"]
OneTimeCode = Annotated[str, Field(pattern=r"^\d{6}$", description="6 位数字验证码", examples=["123456"])]
ChallengeId = Annotated[str, Field(min_length=1, max_length=100, description="验证凭据 challenge_id")]


class TokenOut(BaseModel):
    access_token: str = Field(description="不透明的访问令牌，放在 Authorization: Bearer 头中")
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="最长有效期（秒）；闲置超时后提前失效", examples=[28800])
    scope: Literal["full", "mfa_enrolment", "applicant", "password_change"] = Field(
        default="full",
        description="mfa_enrolment：须先绑定双因素认证，此令牌仅可用于绑定；applicant：注册资质尚未审核通过，"
        "仅可用于本人的注册申请（/staff-applications/me）；password_change：初始密码须先修改，此令牌仅可用于"
        "修改密码（POST /auth/password），修改后即按账号状态升级",
    )


class MfaChallengeOut(BaseModel):
    """The password was right; the sign-in finishes with a second factor at `POST /auth/token/mfa`."""

    mfa_required: Literal[True] = True
    challenge_id: str = Field(description="第二步验证的凭据，短时有效、仅可使用一次")
    methods: list[MfaMethod] = Field(description="可用的验证方式", examples=[["totp", "sms"]])
    expires_in: int = Field(description="有效期（秒）", examples=[300])


class MfaLoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    challenge_id: ChallengeId
    method: MfaMethod
    code: OneTimeCode


class SmsCodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    challenge_id: ChallengeId


class SmsSentOut(BaseModel):
    sent_to: str = Field(description="接收验证码的手机号（已脱敏）", examples=["138****8000"])
    resend_after: int = Field(description="多少秒后可重新获取", examples=[60])


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    old_password: str = Field(min_length=1, max_length=MAX_LENGTH)
    new_password: str = Field(min_length=1, max_length=MAX_LENGTH)

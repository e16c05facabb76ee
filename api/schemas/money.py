"""Bills, 医保 at payment, refunds and their negotiation, e-invoices: what the API takes and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator

from models.billing import NegotiationParty, RefundKind


class InsuranceIn(BaseModel):
    """Pay with 医保, one of two ways (see `models.billing.InsurancePath`):

    - `ec_token`: the 医保电子凭证 token (ecToken) the patient's app got by decoding the 电子凭证 QR code; the hospital
      settles the bill with it (1101 → 2201 → 2204 → 2207);
    - `mobile`: 医保移动支付, the 医保 platform's own path for online visits: after booking or confirming, the patient
      authorizes the payment with their 医保电子凭证 on the platform's authorization page (the answer's `pay_url` leads
      there), and the platform settles the bill with that authorization (6201 → 6202).
    """

    ec_token: str | None = Field(
        default=None, min_length=8, max_length=512, description="医保电子凭证令牌（ecToken），扫码结算时提供"
    )
    mobile: bool = Field(default=False, description="true：医保移动支付，在医保平台授权后由平台结算（不提供 ec_token）")
    use_account: bool = Field(default=True, description="个人负担部分是否优先使用个人账户支付")

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if self.mobile == (self.ec_token is not None):
            raise ValueError("请提供医保电子凭证令牌（ec_token），或选择医保移动支付（mobile），二者选其一")
        return self


class InsurancePartOut(BaseModel):
    """How 医保 settled the bill (2207, or 6202 on the mobile path): pooled fund, personal account, and what the patient
    pays (cash). After a partial refund beyond the self-pay part: the settlement of what remains."""

    setl_id: str | None
    status: str = Field(
        description="settled 已结算；cancelled 已撤销（2208/6203）；awaiting_authorization 待患者在医保平台授权"
        "（医保移动支付）；其余为处理中"
    )
    mobile: bool = Field(default=False, description="是否医保移动支付")
    fund_fen: int = Field(description="统筹基金支付（分）")
    account_fen: int = Field(description="个人账户支付（分）")
    cash_fen: int = Field(description="个人自付（分），经支付渠道支付")


class InvoiceOut(BaseModel):
    invoice_code: str = Field(description="票据代码")
    invoice_no: str = Field(description="票据号码")
    check_code: str | None = Field(description="校验码")
    url: str | None = Field(description="查验地址")
    issued_at: datetime | None
    red_invoice_code: str | None = Field(description="冲红后的红字票据代码")
    red_invoice_no: str | None = Field(description="冲红后的红字票据号码")


class RefundStarted(BaseModel):
    refund_id: str
    bill_id: str
    kind: RefundKind
    amount_fen: int = Field(description="申请退还的金额（分），含医保部分")


class AuthorizedRefundIn(BaseModel):
    """An administrator authorizes a refund of a registration fee (8.4.2)."""

    reason_code: Literal["patient_unable_to_attend", "schedule_changed"] = Field(
        description="patient_unable_to_attend 患者因故未能就诊；schedule_changed 医院调整排班"
    )
    reason: str = Field(min_length=1, max_length=500, examples=["患者住院，未能按时就诊"])
    amount_fen: int | None = Field(default=None, gt=0, description="退款金额（分）；不填为全部剩余可退金额")


class SpecialRefundIn(BaseModel):
    """After the medicine left the pharmacy: a refund decided by negotiation (8.4.2)."""

    reason: str = Field(min_length=1, max_length=500, examples=["药品运输途中破损"])
    amount_fen: int = Field(gt=0, description="患者申请退还的金额（分），协商金额不超过此数")


class NegotiationIn(BaseModel):
    party: NegotiationParty = Field(description="hospital 医院；supplier 供药方；courier 物流方")
    agreed: bool = Field(description="该方是否同意")
    amount_fen: int = Field(default=0, ge=0, description="该方同意承担的金额（分）")
    note: str = Field(default="", max_length=500)


class ConclusionIn(BaseModel):
    approve: bool = Field(description="true：按各方同意承担的合计金额退款；false：不予退款（须说明理由）")
    note: str = Field(default="", max_length=500)


class NegotiationOut(BaseModel):
    party: NegotiationParty
    agreed: bool
    amount_fen: int
    note: str
    recorded_by: str
    recorded_at: datetime


class RefundOut(BaseModel):
    refund_id: str
    bill_id: str
    kind: str
    status: str
    channel_fen: int = Field(description="经支付渠道原路退回（分）")
    insurance_fen: int = Field(description="经医保平台退回（分）：统筹基金与个人账户")
    reason: str
    reason_code: str | None
    requested_by: str
    authorized_by: str | None
    final: bool = Field(description="是否退还了订单剩余全部金额（电子票据随之冲红）")
    failure: str | None
    created_at: datetime
    finished_at: datetime | None
    negotiation: list[NegotiationOut] = []


class RxRefundRequestIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500, examples=["病情好转，不再需要该处方药品"])


class RxRefundDecisionIn(BaseModel):
    approve: bool
    note: str = Field(default="", max_length=500, description="不同意时须说明理由")

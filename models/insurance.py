"""医保 (national medical insurance platform, 国家医疗保障信息平台) DTOs.

Persons (1101), outpatient visits (2201/2202), fee details (2204/2205), pre-settlement and settlement (2206/2207/2208),
reversal (2601), daily reconciliation (3201/3202) and the mobile payment path (6201/6202/6203/6301/6401 and the
settlement notice). Amounts are integer fen; the platform's 元 numbers are converted exactly at the adapter edge.

Requests that carry a credential number, an ID-card number or a name are PII: activities build them from decrypted
columns right before the call, and they never travel in workflow payloads (the same rule as HIS `PatientIdentity`).
Results carry only masked identity.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, Field, model_validator

from models.common import Fen


class CertType(StrEnum):
    """就诊凭证类型 (mdtrt_cert_type)."""

    EC_TOKEN = "01"  # 医保电子凭证: the ecToken from the QR-code decode
    ID_CARD = "02"  # 居民身份证 number
    SOCIAL_CARD = "03"  # 社会保障卡 number


class InsuranceCredential(BaseModel):
    """What 1101 looks a person up by. PII."""

    cert_type: CertType
    cert_no: str = Field(min_length=1)
    psn_name: str | None = None


class Coverage(BaseModel):
    """One insurance of the person (1101 `insuinfo`)."""

    insutype: str  # 险种类型, e.g. 310 职工基本医疗保险, 390 城乡居民基本医疗保险
    psn_type: str
    balance_fen: Fen  # balc: personal account balance
    insuplc_admdvs: str  # 参保地医保区划: goes into the envelope of every later call about this person
    psn_insu_stas: str | None = None  # 参保状态
    paus_insu_date: date | None = None
    cvlserv_flag: str | None = None
    emp_name: str | None = None


class InsuredRef(BaseModel):
    """The person and insurance a call is about; everything later calls need from 1101."""

    psn_no: str
    insutype: str
    insuplc_admdvs: str


class InsuredPerson(BaseModel):
    """1101 人员信息获取, with the ID-card number masked."""

    psn_no: str
    psn_name: str
    psn_cert_type: str | None = None
    certno_masked: str | None = None
    gend: str | None = None
    brdy: date | None = None
    coverages: list[Coverage]
    identities: list[str] = []  # psn_idet_type codes (idetinfo)

    def coverage(self, insutype: str | None = None) -> Coverage:
        """The coverage of `insutype`, or the first one (the platform lists the primary insurance first)."""
        for item in self.coverages:
            if insutype is None or item.insutype == insutype:
                return item
        raise LookupError(f"person {self.psn_no} has no coverage {insutype!r}")

    def ref(self, insutype: str | None = None) -> InsuredRef:
        chosen = self.coverage(insutype)
        return InsuredRef(psn_no=self.psn_no, insutype=chosen.insutype, insuplc_admdvs=chosen.insuplc_admdvs)


class VisitRequest(BaseModel):
    """2201 门诊挂号. PII (the credential)."""

    insured: InsuredRef
    cert_type: CertType
    cert_no: str
    ipt_otp_no: str  # the hospital's own outpatient number, unique in the hospital
    begntime: datetime
    atddr_no: str  # 医师编码 (national practitioner code)
    dr_name: str
    dept_code: str
    dept_name: str
    caty: str  # 科别, e.g. A50 中医科


class InsuranceVisit(BaseModel):
    """A registered visit (2201 `mdtrt_id`) and what later calls about it need."""

    insured: InsuredRef
    mdtrt_id: str
    ipt_otp_no: str


class FeeLine(BaseModel):
    """One line of 2204 `feedetail`. `pric` is the unit price in 元 and may carry more than 2 decimals (饮片 per gram)."""

    feedetl_sn: str  # unique within the visit
    med_list_codg: str  # national catalogue code
    medins_list_codg: str  # the hospital's own catalogue code
    det_item_fee_sumamt_fen: Fen
    cnt: Decimal = Field(gt=0)
    pric: Decimal = Field(ge=0)
    fee_ocur_time: datetime
    bilg_dept_codg: str
    bilg_dept_name: str
    bilg_dr_codg: str
    bilg_dr_name: str
    rxno: str | None = None
    rx_circ_flag: str = "0"  # 外购处方标志
    hosp_appr_flag: str = "1"  # 医院审批标志: 1 = reimburse as the catalogue allows
    tcmdrug_used_way: str | None = None  # 中药使用方式: 1 复方, 2 单方
    dise_codg: str | None = None


class FeeLineResult(BaseModel):
    """One line of the 2204 `result`: how the platform classifies the fee."""

    feedetl_sn: str
    det_item_fee_sumamt_fen: Fen
    cnt: Decimal
    pric: Decimal
    selfpay_prop: Decimal | None = None  # 自付比例
    fulamt_ownpay_fen: Fen = 0  # 全自费金额
    overlmt_fen: Fen = 0  # 超限价金额
    preselfpay_fen: Fen = 0  # 先行自付金额
    inscp_scp_fen: Fen = 0  # 符合政策范围金额
    chrgitm_lv: str | None = None  # 收费项目等级 (甲/乙/丙)
    med_chrgitm_type: str | None = None


class FeeUpload(BaseModel):
    mdtrt_id: str
    chrg_bchno: str
    lines: list[FeeLineResult]

    @property
    def total_fen(self) -> int:
        return sum(line.det_item_fee_sumamt_fen for line in self.lines)


class PaymentSplit(BaseModel):
    """Who pays how much of one settlement, refund or mobile order.

    `total_fen` is medfee_sumamt (医疗费总额), `fund_fen` fund_pay_sumamt (基金支付总额: the pooled fund and other
    funds), `account_fen` acct_pay (个人账户支出, including acct_mulaid_pay, the family-pooled account), `cash_fen`
    psn_cash_pay (个人现金支出), `hospital_part_fen` hosp_part_amt (医院负担, usually 0). The parts must add up to the
    total to the fen: a platform answer that does not is an error, never silently accepted.
    """

    total_fen: Fen
    fund_fen: Fen
    account_fen: Fen
    cash_fen: Fen
    hospital_part_fen: Fen = 0

    @model_validator(mode="after")
    def _parts_add_up(self) -> Self:
        parts = self.fund_fen + self.account_fen + self.cash_fen + self.hospital_part_fen
        if parts != self.total_fen:
            raise ValueError(
                f"fund {self.fund_fen} + account {self.account_fen} + cash {self.cash_fen}"
                f" + hospital {self.hospital_part_fen} = {parts} fen, not the total {self.total_fen} fen"
            )
        return self


class FundDetail(BaseModel):
    """One line of `setldetail`: a fund that paid part of the settlement."""

    fund_pay_type: str
    fund_pay_type_name: str | None = None
    fund_payamt_fen: int  # signed: a cancellation answers with negative lines


class SettleRequest(BaseModel):
    """2206 门诊预结算 / 2207 门诊结算. PII (the credential)."""

    visit: InsuranceVisit
    cert_type: CertType
    cert_no: str
    chrg_bchno: str  # the fee batch (2204) being settled
    total_fen: Fen = Field(gt=0)
    med_type: str = "11"  # 医疗类别: 11 普通门诊
    psn_setlway: str = "01"  # 个人结算方式: 01 按项目结算
    use_account: bool = True  # acct_used_flag: pay the patient's part from the personal account first
    invono: str | None = None
    # 2207 wants the 2204 sums in some provinces; sent only when set.
    fulamt_ownpay_fen: Fen | None = None
    overlmt_selfpay_fen: Fen | None = None
    preselfpay_fen: Fen | None = None
    inscp_scp_fen: Fen | None = None


class Settlement(BaseModel):
    """2206/2207 `setlinfo` (+ `setldetail`). A pre-settlement (2206) has no `setl_id`."""

    mdtrt_id: str
    psn_no: str
    setl_id: str | None = None
    medins_setl_id: str | None = None  # the platform echoes the sender's message id here
    setl_time: datetime | None = None
    split: PaymentSplit
    account_mutual_aid_fen: Fen = 0  # acct_mulaid_pay: part of `split.account_fen`
    balance_fen: int | None = None  # balc: account balance after this settlement
    inscp_scp_fen: Fen = 0
    fulamt_ownpay_fen: Fen = 0
    deductible_fen: Fen = 0  # act_pay_dedc: 实际支付起付线
    pooled_fund_fen: Fen = 0  # hifp_pay: 统筹基金支出, part of `split.fund_fen`
    clr_optins: str | None = None  # 清算经办机构
    clr_way: str | None = None
    clr_type: str | None = None
    fund_details: list[FundDetail] = []

    @model_validator(mode="after")
    def _sub_amounts_fit(self) -> Self:
        if self.account_mutual_aid_fen > self.split.account_fen:
            raise ValueError("acct_mulaid_pay exceeds acct_pay")
        if self.pooled_fund_fen > self.split.fund_fen:
            raise ValueError("hifp_pay exceeds fund_pay_sumamt")
        return self


class SettlementCancellation(BaseModel):
    """2208 门诊结算撤销: the reversing settlement, its amounts given back as positive numbers."""

    original_setl_id: str
    setl_id: str | None = None  # id of the reversing entry, where the platform gives one
    split: PaymentSplit


class Reversal(BaseModel):
    """2601 冲正交易 of a message whose answer never arrived."""

    original_infno: str
    original_msgid: str


class DailyCheckQuery(BaseModel):
    """3201 医药机构费用结算对总账: the hospital's own totals for one clearing institution and period."""

    insutype: str
    clr_type: str  # 清算类别, e.g. 11 门诊
    setl_optins: str  # 结算经办机构 (the insured's insuplc_admdvs for local settlements)
    begin: date
    end: date
    total_fen: Fen
    fund_fen: Fen
    account_fen: Fen
    settlement_count: int = Field(ge=0)


class DailyCheckResult(BaseModel):
    setl_optins: str
    balanced: bool
    stmt_rslt: str  # the platform's code: "0" 平 (balanced), otherwise 不平
    description: str | None = None


class DailyCheckLine(BaseModel):
    """One settlement in the 3202 detail file."""

    setl_id: str
    mdtrt_id: str
    psn_no: str
    total_fen: Fen
    fund_fen: Fen
    account_fen: Fen
    cancelled: bool = False  # refd_setl_flag: the settlement was cancelled (2208) within the period


class DailyCheckDetailQuery(BaseModel):
    """3202 医药机构费用结算对明细账, run when 3201 does not balance."""

    setl_optins: str
    begin: date
    end: date
    lines: list[DailyCheckLine]

    def _active(self) -> list[DailyCheckLine]:
        return [line for line in self.lines if not line.cancelled]

    @property
    def total_fen(self) -> int:
        return sum(line.total_fen for line in self._active())

    @property
    def fund_fen(self) -> int:
        return sum(line.fund_fen for line in self._active())

    @property
    def cash_fen(self) -> int:
        # cash_payamt: what neither the fund nor the account paid.
        return sum(line.total_fen - line.fund_fen - line.account_fen for line in self._active())

    @property
    def settlement_count(self) -> int:
        return len(self._active())


class DailyCheckOutcome(StrEnum):
    MATCHED = "matched"
    AMOUNT_MISMATCH = "amount_mismatch"
    HOSPITAL_ONLY = "hospital_only"  # in our file, unknown to the platform
    PLATFORM_ONLY = "platform_only"  # settled at the platform, missing from our file


class DailyCheckLineResult(BaseModel):
    setl_id: str
    outcome: DailyCheckOutcome
    memo: str | None = None


class DailyCheckDetailResult(BaseModel):
    file_qury_no: str
    lines: list[DailyCheckLineResult]

    @property
    def mismatches(self) -> list[DailyCheckLineResult]:
        return [line for line in self.lines if line.outcome != DailyCheckOutcome.MATCHED]


# --- mobile payment (医保移动支付: online visits paid from the patient's phone) -------------------------------------


class SettlementScope(StrEnum):
    """setlType / refdType: which parts a settlement or refund covers."""

    ALL = "ALL"
    CASH = "CASH"  # self-pay only
    HI = "HI"  # insurance (fund + account) only


class MobileOrderState(StrEnum):
    PROCESSING = "processing"
    SETTLED = "settled"
    CANCELLED = "cancelled"  # revoked or refunded
    FAILED = "failed"
    UNKNOWN = "unknown"


def mobile_order_state(ord_stas: str) -> MobileOrderState:
    """Classify the platform's ordStas (0–16).

    Grouping taken from third-party integrations (not the spec text): 0–2 in progress, 3–6 settled (self-pay, insurance
    or both done), 7–13 refunded or revoked, 14–16 failed. Anything else is UNKNOWN and must be queried again, never
    read as paid.
    """
    try:
        code = int(ord_stas)
    except ValueError:
        return MobileOrderState.UNKNOWN
    if 0 <= code <= 2:
        return MobileOrderState.PROCESSING
    if 3 <= code <= 6:
        return MobileOrderState.SETTLED
    if 7 <= code <= 13:
        return MobileOrderState.CANCELLED
    if 14 <= code <= 16:
        return MobileOrderState.FAILED
    return MobileOrderState.UNKNOWN


class MobileAuthorization(BaseModel):
    """The patient's online 医保 payment authorization (线上支付授权), as the platform reports it. PII.

    The patient gives it with their 医保电子凭证 on the platform's authorization page (in WeChat, Alipay or the 国家医保服务
    平台 app), opened for one of our orders (`med_org_ord`: the bill). `pay_auth_no` is what 6201, 6202 and 6203 carry
    as the patient's consent; the identity says whose it is, so it can be checked against the patient who owes the bill.
    """

    med_org_ord: str = Field(min_length=1)
    pay_auth_no: str = Field(min_length=1)
    user_name: str
    id_type: str = "01"  # 证件类型: 01 居民身份证
    id_no: str


class MobileOrderRequest(BaseModel):
    """6201 费用明细上传 for a visit registered with 2201. PII (the patient's name and ID number)."""

    visit: InsuranceVisit
    med_org_ord: str  # our order number (医疗机构订单号)
    pay_auth_no: str  # 支付授权码 from the patient's online authorization in WeChat/Alipay
    user_name: str
    id_type: str = "01"  # 证件类型: 01 居民身份证
    id_no: str
    chrg_bchno: str
    fee_type: str = "02"  # 费用类型: 01 挂号, 02 门诊
    med_type: str = "11"
    begntime: datetime
    dept_code: str
    dept_name: str
    caty: str
    atddr_no: str
    dr_name: str
    use_account: bool = True
    lines: list[FeeLine] = Field(min_length=1)

    @property
    def total_fen(self) -> int:
        return sum(line.det_item_fee_sumamt_fen for line in self.lines)


class MobileOrder(BaseModel):
    """6201 answer: the platform's order and the token every later call about it needs."""

    pay_ord_id: str
    pay_token: str
    med_org_ord: str


class MobilePayRequest(BaseModel):
    """6202 支付下单."""

    order: MobileOrder
    visit: InsuranceVisit
    pay_auth_no: str
    chrg_bchno: str
    fee_type: str = "02"
    use_account: bool = True


class MobilePayResult(BaseModel):
    pay_ord_id: str
    ord_stas: str
    split: PaymentSplit

    @property
    def state(self) -> MobileOrderState:
        return mobile_order_state(self.ord_stas)


class MobileOrderQuery(BaseModel):
    """6301 订单结算结果查询 / 6401 费用明细上传撤销. PII (name and ID number)."""

    order: MobileOrder
    user_name: str
    id_type: str = "01"
    id_no: str


class MobileOrderStatus(BaseModel):
    pay_ord_id: str
    ord_stas: str
    split: PaymentSplit | None = None  # only once settled; an order in progress has no amounts yet
    setl_type: SettlementScope | None = None

    @property
    def state(self) -> MobileOrderState:
        return mobile_order_state(self.ord_stas)


class MobileRefundRequest(BaseModel):
    """6203 医保退费. The patient proves consent with either pay_auth_no or ec_token, never both."""

    order: MobileOrder
    refund_type: SettlementScope
    split: PaymentSplit
    pay_auth_no: str | None = None
    ec_token: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.pay_auth_no is None) == (self.ec_token is None):
            raise ValueError("give exactly one of pay_auth_no and ec_token")
        if self.refund_type == SettlementScope.CASH and self.split.cash_fen != self.split.total_fen:
            raise ValueError("a CASH refund contains cash only")
        if self.refund_type == SettlementScope.HI and self.split.cash_fen != 0:
            raise ValueError("an HI refund contains no cash")
        return self


class MobileRefundStatus(StrEnum):
    SUCCEEDED = "SUCC"
    FAILED = "FAIL"
    UNKNOWN = "EXP"  # the platform could not tell yet: query 6301, never refund again


class MobileRefundResult(BaseModel):
    pay_ord_id: str
    app_refd_sn: str  # our refund serial, derived from the idempotency key
    status: MobileRefundStatus
    split: PaymentSplit


class MobileSettlementNotice(BaseModel):
    """The platform's settlement result callback.

    Third-party integrations number it 6302 (医保结算结果通知); 6401 there is 费用明细上传撤销 (`cancel_mobile_order`).
    """

    pay_ord_id: str
    med_org_ord: str
    call_type: str
    trace_time: str
    setl_type: SettlementScope
    split: PaymentSplit
    revs_token: str | None = None

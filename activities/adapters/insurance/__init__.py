"""医保: the national medical insurance platform (国家医疗保障信息平台, 定点医药机构接口).

Idempotency. Every mutating call takes `idempotency_key` (`{workflow_id}:{step}`) and `requested_at` (the workflow's
`workflow.now()` when it scheduled the step, so every retry of the activity passes the same value). Implementations
derive everything the peer dedupes on from those two alone:

- the message id (msgid = fixmedins_code + requested_at as yyyyMMddHHmmss + a 4-digit sequence hashed from the
  transaction code and the key), so a retried activity resends the *same* msgid and a platform that answers
  duplicates with its first answer cannot settle twice. Four digits a second do collide now and then (two steps in
  one second drawing one sequence); an answer recognisably meant for another message sends the step again under the
  key's next msgid, a sequence every retry walks the same way;
- the platform echoes that msgid back as `medins_setl_id` on a settlement;
- our serials for the mobile path (orgBizSer, appRefdSn) likewise.

Settling is never blindly resent. When a settlement's outcome is unknown (2207 or 6202 timed out, the gateway failed
after the request went out, the answer could not be read or did not add up), the adapter raises `SettlementUnknown`
carrying the msgid. That error is not retryable: the caller reverses the message with `reverse` (2601), or for the
mobile path queries 6301, and only then settles again under a new key.

Errors otherwise follow `activities.adapters.errors`: `AdapterError` is retryable (network, 5xx outside settlement),
`AdapterRefusal` is the platform's business refusal (infcode -1: code, err_msg).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol, runtime_checkable

from activities.adapters.errors import AdapterRefusal
from models.insurance import (
    DailyCheckDetailQuery,
    DailyCheckDetailResult,
    DailyCheckQuery,
    DailyCheckResult,
    FeeLine,
    FeeUpload,
    InsuranceCredential,
    InsuranceVisit,
    InsuredPerson,
    InsuredRef,
    MobileAuthorization,
    MobileOrder,
    MobileOrderQuery,
    MobileOrderRequest,
    MobileOrderStatus,
    MobilePayRequest,
    MobilePayResult,
    MobileRefundRequest,
    MobileRefundResult,
    MobileSettlementNotice,
    Reversal,
    Settlement,
    SettlementCancellation,
    SettleRequest,
    VisitRequest,
)


class SettlementUnknown(AdapterRefusal):
    """A settling message went out and no usable answer came back: it may or may not have settled.

    Never retry it: reverse `msgid` with `MedicalInsurance.reverse` (or, for 6202, query the order) first. It is an
    `AdapterRefusal` so that the activities' existing wrapper (`refusals_are_final`) already makes it non-retryable;
    an activity that settles catches it before that and hands `msgid` to its workflow.
    """

    def __init__(self, infno: str, msgid: str, reason: str) -> None:
        super().__init__("SETTLEMENT_UNKNOWN", f"医保结算结果未知（交易 {infno}，报文 {msgid}），须先冲正或查询")
        self.infno = infno
        self.msgid = msgid
        self.reason = reason


@runtime_checkable
class MedicalInsurance(Protocol):
    name: str

    async def query_person(self, *, credential: InsuranceCredential) -> InsuredPerson:
        """1101: the insured person behind a 医保电子凭证 ecToken, an ID card or a social security card."""
        ...

    async def register_visit(
        self, *, idempotency_key: str, requested_at: datetime, request: VisitRequest
    ) -> InsuranceVisit:
        """2201 门诊挂号."""
        ...

    async def cancel_visit(self, *, idempotency_key: str, requested_at: datetime, visit: InsuranceVisit) -> None:
        """2202 门诊挂号撤销 (only while nothing of the visit is settled)."""
        ...

    async def upload_fees(
        self,
        *,
        idempotency_key: str,
        requested_at: datetime,
        visit: InsuranceVisit,
        chrg_bchno: str,
        lines: list[FeeLine],
    ) -> FeeUpload:
        """2204 门诊费用明细信息上传: one fee batch (收费批次)."""
        ...

    async def cancel_fees(
        self, *, idempotency_key: str, requested_at: datetime, visit: InsuranceVisit, chrg_bchno: str
    ) -> None:
        """2205 门诊费用明细信息撤销 of an unsettled batch ("0000" = every unsettled batch of the visit)."""
        ...

    async def pre_settle(self, *, request: SettleRequest) -> Settlement:
        """2206 门诊预结算: what 2207 would split, without settling."""
        ...

    async def settle(self, *, idempotency_key: str, requested_at: datetime, request: SettleRequest) -> Settlement:
        """2207 门诊结算. Raises `SettlementUnknown` when the outcome is unknown; never resends on its own."""
        ...

    async def cancel_settlement(
        self, *, idempotency_key: str, requested_at: datetime, visit: InsuranceVisit, setl_id: str
    ) -> SettlementCancellation:
        """2208 门诊结算撤销."""
        ...

    async def reverse(
        self,
        *,
        idempotency_key: str,
        requested_at: datetime,
        insured: InsuredRef,
        original_infno: str,
        original_msgid: str,
    ) -> Reversal:
        """2601 冲正交易 of a message whose answer never arrived; a message that never committed reverses to nothing."""
        ...

    async def daily_check(self, *, query: DailyCheckQuery) -> DailyCheckResult:
        """3201 对总账."""
        ...

    async def daily_check_detail(
        self, *, idempotency_key: str, requested_at: datetime, query: DailyCheckDetailQuery
    ) -> DailyCheckDetailResult:
        """3202 对明细账 (detail file up, per-settlement results back)."""
        ...

    async def upload_mobile_order(
        self, *, idempotency_key: str, requested_at: datetime, request: MobileOrderRequest
    ) -> MobileOrder:
        """6201 费用明细上传 (mobile payment)."""
        ...

    async def mobile_pay(
        self, *, idempotency_key: str, requested_at: datetime, request: MobilePayRequest
    ) -> MobilePayResult:
        """6202 支付下单. Raises `SettlementUnknown` when the outcome is unknown: query 6301, never resend."""
        ...

    async def mobile_refund(
        self, *, idempotency_key: str, requested_at: datetime, request: MobileRefundRequest
    ) -> MobileRefundResult:
        """6203 医保退费."""
        ...

    async def query_mobile_order(self, *, query: MobileOrderQuery) -> MobileOrderStatus:
        """6301 医保订单结算结果查询."""
        ...

    async def cancel_mobile_order(
        self, *, idempotency_key: str, requested_at: datetime, query: MobileOrderQuery
    ) -> None:
        """6401 费用明细上传撤销 of an unpaid mobile order."""
        ...

    def parse_mobile_authorization(self, headers: Mapping[str, str], body: bytes) -> MobileAuthorization:
        """Verify and decode the patient's payment authorization the platform reports for one of our orders (the
        payAuthNo 6201/6202/6203 need); raise `InvalidCallback` if it does not verify."""
        ...

    def parse_mobile_notice(self, headers: Mapping[str, str], body: bytes) -> MobileSettlementNotice:
        """Verify and decode the settlement result callback; raise `InvalidCallback` if it does not verify.

        Treat it as a hint: confirm with `query_mobile_order` before acting on it.
        """
        ...

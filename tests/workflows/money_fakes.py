"""Fake money activities (医保 at payment, refund claims and negotiations, refund requests, e-invoices), registered
under the real names. Mixed into `FakeWorld`; behaviour is set per test through attributes."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.billing import (
    InsurancePath,
    InsuranceRelease,
    InsuranceSettleRequest,
    InsuranceShare,
    MobileSettlementCheck,
    MobileSettlementState,
    NegotiationEntry,
    RefundInput,
    RefundPlan,
)
from models.insurance import PaymentSplit
from models.invoice import InvoiceOutcome, InvoiceTask
from models.refund_request import DispatchStatus


class MoneyFakes:
    refunds: list[RefundInput]

    def __init__(self) -> None:
        # 医保: whether the patient presented a credential, and what each settling attempt answers in turn: a share,
        # or the code of a refusal ("SETTLEMENT_UNKNOWN" for a settlement whose answer never came).
        self.insurance_presented_for: set[str] = set()
        # 医保移动支付: bills paid that way, and what each 6301 check answers in turn (default: still processing).
        self.mobile_for: set[str] = set()
        self.mobile_checks: list[MobileSettlementCheck] = []
        self.checked: list[InsuranceSettleRequest] = []
        self.settle_outcomes: list[InsuranceShare | str] = []
        self.settle_requests: list[InsuranceSettleRequest] = []
        self.reversals: list[InsuranceSettleRequest] = []
        self.releases: list[InsuranceRelease] = []
        self.release_refusal: str | None = None
        # Refund claims: the plan `claim_refund` answers with (None: all through the channel, not final), or the code
        # of a refusal.
        self.refund_plan: RefundPlan | None = None
        self.claim_refusal: str | None = None
        self.negotiation_rows: list[tuple[str, NegotiationEntry]] = []
        self.special_opened: list[str] = []
        # Refund requests: where the medicine is, and the withdrawals made.
        self.dispatch = DispatchStatus(left=False, stage="at_pharmacy", order_no="PH-order", pharmacy_id=None)
        self.withdrawn: list[str] = []
        # E-invoices issued and reversed.
        self.invoices: list[InvoiceTask] = []
        self.reversed_invoices: list[InvoiceTask] = []

    def _seen(self) -> None:
        raise NotImplementedError  # FakeWorld counts calls

    # --- 医保 at payment ---
    @activity.defn(name="insurance_presented")
    async def insurance_presented(self, bill_id: str) -> bool:
        self._seen()
        return bill_id in self.insurance_presented_for

    @activity.defn(name="insurance_path")
    async def insurance_path(self, bill_id: str) -> InsurancePath | None:
        self._seen()
        if bill_id in self.mobile_for:
            return InsurancePath.MOBILE
        return InsurancePath.HOSPITAL if bill_id in self.insurance_presented_for else None

    @activity.defn(name="check_mobile_settlement")
    async def check_mobile_settlement(self, request: InsuranceSettleRequest) -> MobileSettlementCheck:
        self._seen()
        self.checked.append(request)
        if self.mobile_checks:
            return self.mobile_checks.pop(0)
        return MobileSettlementCheck(state=MobileSettlementState.PROCESSING)

    @activity.defn(name="settle_bill_insurance")
    async def settle_bill_insurance(self, request: InsuranceSettleRequest) -> InsuranceShare:
        self._seen()
        self.settle_requests.append(request)
        outcome = self.settle_outcomes.pop(0)
        if isinstance(outcome, str):
            raise ApplicationError(f"医保：{outcome}", type=outcome, non_retryable=True)
        return outcome

    @activity.defn(name="reverse_unknown_settlement")
    async def reverse_unknown_settlement(self, request: InsuranceSettleRequest) -> None:
        self._seen()
        self.reversals.append(request)

    @activity.defn(name="release_bill_insurance")
    async def release_bill_insurance(self, release: InsuranceRelease) -> PaymentSplit | None:
        self._seen()
        if self.release_refusal is not None:
            raise ApplicationError("医保退费未成功", type=self.release_refusal, non_retryable=True)
        self.releases.append(release)
        return None

    # --- refunds ---
    @activity.defn(name="claim_refund")
    async def claim_refund(self, refund: RefundInput) -> RefundPlan:
        self._seen()
        if self.claim_refusal is not None:
            raise ApplicationError("退款金额超过可退金额", type=self.claim_refusal, non_retryable=True)
        self.refunds.append(refund)
        if self.refund_plan is not None:
            return self.refund_plan.model_copy(update={"refund_id": refund.refund_id})
        return RefundPlan(refund_id=refund.refund_id, channel_fen=refund.amount_fen, eta="即时到账")

    @activity.defn(name="open_special_refund")
    async def open_special_refund(self, refund: RefundInput) -> None:
        self._seen()
        self.special_opened.append(refund.refund_id)

    @activity.defn(name="record_negotiation")
    async def record_negotiation(self, refund_id: str, entry: NegotiationEntry) -> None:
        self._seen()
        self.negotiation_rows.append((refund_id, entry))

    # --- refund requests ---
    @activity.defn(name="dispatch_status")
    async def dispatch_status(self, prescription_id: str) -> DispatchStatus:
        self._seen()
        return self.dispatch

    @activity.defn(name="withdraw_fulfilment")
    async def withdraw_fulfilment(self, prescription_id: str) -> DispatchStatus:
        self._seen()
        self.withdrawn.append(prescription_id)
        return self.dispatch

    # --- e-invoices ---
    @activity.defn(name="issue_invoice")
    async def issue_invoice(self, task: InvoiceTask) -> InvoiceOutcome:
        self._seen()
        self.invoices.append(task)
        return InvoiceOutcome(**task.model_dump(), invoice_no=f"INV-{task.bill_id}", total_fen=100)

    @activity.defn(name="reverse_invoice")
    async def reverse_invoice(self, task: InvoiceTask) -> InvoiceOutcome:
        self._seen()
        self.reversed_invoices.append(task)
        return InvoiceOutcome(
            **task.model_dump(), invoice_no=f"INV-{task.bill_id}", red_invoice_no=f"RED-{task.bill_id}"
        )

    def money_activities(self) -> tuple[list[Any], list[Any]]:
        """(local, integration) as the worker registers them."""
        local = [
            self.insurance_presented, self.insurance_path, self.claim_refund, self.open_special_refund,
            self.record_negotiation, self.dispatch_status, self.withdraw_fulfilment,
        ]  # fmt: skip
        integration = [
            self.settle_bill_insurance, self.check_mobile_settlement, self.reverse_unknown_settlement,
            self.release_bill_insurance, self.issue_invoice, self.reverse_invoice,
        ]  # fmt: skip
        return local, integration

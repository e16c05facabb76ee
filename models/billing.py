"""Bills, payments and refunds (8.4)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from models.common import Fen
from models.insurance import PaymentSplit


class BillKind(StrEnum):
    REGISTRATION = "registration"
    PRESCRIPTION = "prescription"
    EXAM = "exam"


class BillStatus(StrEnum):
    OPEN = "open"
    PAID = "paid"
    CLOSED = "closed"


class BillInput(BaseModel):
    bill_id: str
    kind: BillKind
    ref_id: str
    patient_id: str
    amount_fen: Fen
    description: str
    channel: str
    pay_window_s: int


class ChannelOrderStatus(StrEnum):
    NOTPAY = "NOTPAY"
    SUCCESS = "SUCCESS"
    CLOSED = "CLOSED"


class ChannelOrder(BaseModel):
    """What the payment channel says about one order."""

    out_trade_no: str
    amount_fen: Fen
    status: ChannelOrderStatus
    prepay_id: str | None = None
    pay_url: str | None = None
    transaction_id: str | None = None
    paid_at: datetime | None = None
    # Set by the activity, not the channel: the campus whose merchant took the order (none: the only merchant).
    campus: str | None = None


class PaymentNotice(BaseModel):
    """A verified payment result from the channel (its callback or a query), signalled to the Bill workflow."""

    out_trade_no: str
    status: ChannelOrderStatus
    amount_fen: Fen
    transaction_id: str | None = None
    paid_at: datetime | None = None


class InsuranceShare(BaseModel):
    """The 医保 part of a bill: settled at the platform (2207) before the patient pays the rest at the channel."""

    setl_id: str
    split: PaymentSplit

    @property
    def covered_fen(self) -> int:
        """Paid by 医保 (pooled fund, personal account, and any part the hospital bears): not through the channel."""
        return self.split.total_fen - self.split.cash_fen


class InsuranceSettleRequest(BaseModel):
    """Settle the 医保 part of a bill. `attempt` numbers the settling message (a new one after a reversal);
    `requested_at` is the workflow's time when it asked, so every retry of the activity sends the same message."""

    bill_id: str
    kind: BillKind
    ref_id: str
    patient_id: str
    amount_fen: Fen
    attempt: int = Field(default=0, ge=0)
    requested_at: datetime


class InsurancePath(StrEnum):
    """How the 医保 platform settles a bill, chosen by what the patient presented when asking to pay with 医保.

    - `hospital`: the 定点机构 interface (1101 → 2201 → 2204 → 2207; 2208 to give it back). The patient presents the
      医保电子凭证 token (ecToken) their app decoded from the 电子凭证 QR code: the credential of a visit the hospital
      settles itself, as at its own counter.
    - `mobile`: 医保移动支付, the platform's path for 互联网医院 online visits paid on the patient's phone. The patient
      authorizes the payment with their 医保电子凭证 on the platform's authorization page; that authorization (payAuthNo)
      is what the platform asks for, so the hospital holds no credential of its own (1101 → 2201 → 6201 → 6202;
      6203 gives a settlement back, 6401 withdraws an order never paid, 6301 tells what became of one).
    """

    HOSPITAL = "hospital"
    MOBILE = "mobile"


class MobileSettlementState(StrEnum):
    """What became of a mobile order whose 6202 went unanswered (6301), as the Bill flow acts on it."""

    SETTLED = "settled"  # the platform settled it: take its split
    UNPAID = "unpaid"  # nothing was settled: 6202 may go again under a new key
    PROCESSING = "processing"  # the platform is still at it: ask again later
    CLOSED = "closed"  # revoked, refunded or failed: it can no longer be paid


class MobileSettlementCheck(BaseModel):
    state: MobileSettlementState
    share: InsuranceShare | None = None


class InsuranceRelease(BaseModel):
    """Give back what the platform holds for a bill: its settlement (2208) and, for a bill never paid, the visit."""

    bill_id: str
    requested_at: datetime
    reason: str
    cancel_visit: bool = False


class BillState(BaseModel):
    bill_id: str
    status: BillStatus
    amount_fen: Fen
    pay_deadline: datetime | None = None
    pay_url: str | None = None
    transaction_id: str | None = None
    paid_at: datetime | None = None
    # The merchant (商户) and campus (院区) the settings' rule chose for this bill; none for the default merchant.
    merchant: str | None = None
    campus: str | None = None
    # The 医保 part, when the patient presented a 医保 credential for the bill and the platform settled it.
    insurance: InsuranceShare | None = None
    # Why a presented 医保 credential was not used (the bill is then self-pay in full).
    insurance_refused: str | None = None
    # 医保移动支付: the bill waits for the patient's authorization on the 医保 platform before anything is settled.
    awaiting_insurance_authorization: bool = False

    @property
    def channel_fen(self) -> int:
        """What the patient pays through the payment channel: the bill less its 医保 part."""
        return self.amount_fen - (self.insurance.covered_fen if self.insurance else 0)


class RefundStatus(StrEnum):
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # A special refund waiting for the hospital, the supplier and the courier to agree.
    NEGOTIATING = "negotiating"
    # A special refund the hospital, supplier and courier did not agree to pay (nothing was claimed or paid back).
    REJECTED = "rejected"


class RefundKind(StrEnum):
    """Why a refund is allowed (8.4.2)."""

    ORDINARY = "ordinary"  # the owning flow's own compensation: cancel, abort, leave, pharmacy failure
    AUTHORIZED = "authorized"  # an administrator authorized it (patient could not attend, schedule changed)
    APPROVED = "approved"  # the patient asked before the medicine left the pharmacy, and the hospital approved
    SPECIAL = "special"  # after the medicine left: paid as the hospital, supplier and courier agreed


class RefundInput(BaseModel):
    refund_id: str
    bill_id: str
    patient_id: str
    channel: str
    # What the patient gets back in total (医保 part and channel part). For a special refund: the most asked for;
    # the negotiation decides the amount.
    amount_fen: Fen
    reason: str
    requested_by: str
    kind: RefundKind = RefundKind.ORDINARY
    # A stable code for the reason (e.g. patient_unable_to_attend, schedule_changed), and who authorized/approved it.
    reason_code: str | None = None
    authorized_by: str | None = None


class NegotiationParty(StrEnum):
    HOSPITAL = "hospital"
    SUPPLIER = "supplier"  # the pharmacy or supplier that dispensed the medicine
    COURIER = "courier"


class NegotiationEntry(BaseModel):
    """One party's answer in a special refund's negotiation: whether it agreed, and what it bears (fen)."""

    party: NegotiationParty
    agreed: bool
    amount_fen: Fen = 0
    note: str = Field(default="", max_length=500)
    recorded_by: str


class ConcludeNegotiation(BaseModel):
    """The hospital closes the negotiation: pay what the agreeing parties bear, or refuse the refund."""

    approve: bool
    note: str = Field(default="", max_length=500)
    concluded_by: str


class InsuranceResettle(BaseModel):
    """A partial refund that reaches a 医保 bill's insured part: the settlement goes back whole (2208 / 6203) and what
    remains of the bill is settled anew; the channel returns the self-pay difference.

    The claim holds everything left of the bill (`cash_held_fen` at the channel, `insurance_held_fen` at 医保) until
    the new settlement says how much of it stays paid.
    """

    kind: BillKind
    ref_id: str
    remaining_fen: Fen = Field(gt=0)
    cash_held_fen: Fen
    insurance_held_fen: Fen
    path: InsurancePath = InsurancePath.HOSPITAL


class RefundPlan(BaseModel):
    """How a claimed refund goes back: the 医保 part through the platform, the rest along the original channel.

    `final` when it returns everything left of the bill (the e-invoice is then reversed). `eta` is the expected
    arrival the patient is told, from the settings per channel. `resettle` for a partial refund beyond the self-pay
    part (then `channel_fen` is what the claim holds at the channel, not yet what goes back).
    """

    refund_id: str
    channel_fen: Fen
    insurance: PaymentSplit | None = None
    final: bool = False
    eta: str = ""
    resettle: InsuranceResettle | None = None


class ChannelRefund(BaseModel):
    out_refund_no: str
    out_trade_no: str
    amount_fen: Fen
    status: RefundStatus
    refund_id: str | None = None
    succeeded_at: datetime | None = None


class RefundResult(BaseModel):
    refund_id: str
    bill_id: str
    amount_fen: Fen
    status: RefundStatus
    channel_refund_id: str | None = None
    kind: RefundKind = RefundKind.ORDINARY
    # The parts as paid back (set once planned): through 医保 and through the channel.
    insurance_fen: Fen = 0
    channel_fen: Fen | None = None
    # A re-settling refund: `insurance_fen` and `channel_fen` are what actually went back, whatever its status.
    resettle: bool = False
    negotiation: list[NegotiationEntry] = []
    failure: str | None = None


class ChannelBillLineKind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


class ChannelBillLine(BaseModel):
    """One line of a channel's daily statement (WeChat tradebill, Alipay 账务明细), normalised for reconciliation."""

    kind: ChannelBillLineKind
    out_trade_no: str
    transaction_id: str
    amount_fen: Fen
    occurred_at: datetime
    out_refund_no: str | None = None
    refund_id: str | None = None
    # The channel's own status word for the line (e.g. SUCCESS, REFUND, REVOKED), kept for status-mismatch reports.
    status: str
    fee_fen: Fen = 0

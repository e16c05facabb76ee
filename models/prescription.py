"""Prescriptions, the rule pre-review and pharmacist review (8.2.6, 8.3.1–8.3.3)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from core.crypto.sm import sm3_hex
from models import idcard
from models.common import Fen
from models.signature import SignatureRecord, canonical_json


class Severity(StrEnum):
    """Ordered from least to most severe; a verdict is the most severe finding."""

    INFO = "info"
    WARN = "warn"
    SIGN_AGAIN = "sign_again"
    BLOCK = "block"


class Verdict(StrEnum):
    PASS = "pass"
    WARN = "warn"
    SIGN_AGAIN = "sign_again"
    BLOCK = "block"


class RxItem(BaseModel):
    herb: str = Field(min_length=1, max_length=40, description="饮片名称")
    dose_g: float = Field(gt=0, le=1000, description="每剂用量（克）")
    decoction: str | None = Field(default=None, max_length=20, description="煎法：先煎/后下/包煎/另煎/烊化/冲服")


class PatientFacts(BaseModel):
    age_years: float = Field(ge=0, le=150)
    sex: str = Field(pattern="^(male|female|unknown)$")
    pregnant: bool = False
    allergies: list[str] = []


class Finding(BaseModel):
    code: str
    severity: Severity
    herbs: list[str]
    message: str
    source: str = ""


class CheckResult(BaseModel):
    verdict: Verdict
    findings: list[Finding]


_VERDICT_OF = {
    Severity.INFO: Verdict.PASS,
    Severity.WARN: Verdict.WARN,
    Severity.SIGN_AGAIN: Verdict.SIGN_AGAIN,
    Severity.BLOCK: Verdict.BLOCK,
}
_RANK = list(Severity)


def verdict_for(findings: list[Finding]) -> Verdict:
    """The most severe finding decides; informational findings alone pass."""
    if not findings:
        return Verdict.PASS
    return _VERDICT_OF[max((f.severity for f in findings), key=_RANK.index)]


class CheckRequest(BaseModel):
    patient: PatientFacts
    items: list[RxItem] = Field(min_length=1, max_length=60)
    doses: int = Field(ge=1, le=90, description="剂数")
    days: int | None = Field(default=None, ge=1, le=90)
    online: bool = True


class PrescriptionDraft(BaseModel):
    """What the doctor writes: the items, how many 剂 and how to take them."""

    diagnosis: str = Field(min_length=1, max_length=200)
    items: list[RxItem] = Field(min_length=1, max_length=60)
    doses: int = Field(ge=1, le=90)
    usage: str = Field(default="水煎服，每日一剂，早晚分服", max_length=500)
    days: int | None = Field(default=None, ge=1, le=90)
    # Facts the doctor confirms on the prescription form; age and sex come from the patient's identity.
    pregnant: bool = False
    allergies: list[str] = Field(default=[], max_length=50)

    def check_request(self, id_card_no: str, today: date) -> CheckRequest:
        """What the rule engine checks: this draft for the patient as the ID card and the form describe them today."""
        facts = PatientFacts(
            age_years=idcard.age_years(id_card_no, today),
            sex=idcard.sex(id_card_no),
            pregnant=self.pregnant,
            allergies=self.allergies,
        )
        return CheckRequest(patient=facts, items=self.items, doses=self.doses, days=self.days, online=True)


class RxStage(StrEnum):
    DRAFT = "draft"
    AWAITING_REVIEW = "awaiting_review"
    RETURNED = "returned"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    AWAITING_PAYMENT = "awaiting_payment"
    FULFILLING = "fulfilling"
    COMPLETED = "completed"
    VOID = "void"


class PickupMethod(StrEnum):
    HOSPITAL = "hospital"
    DELIVERY = "delivery"
    # 药店取药 (8.3.6.2): at the partner pharmacy the patient chose.
    PHARMACY = "pharmacy"


class PrescriptionInput(BaseModel):
    prescription_id: str
    visit_id: str
    patient_id: str
    doctor_id: str
    draft: PrescriptionDraft
    channel: str
    review_sla_s: int
    pay_window_s: int
    delivery_sla_s: int
    # 续方: the earlier prescription whose items this one repeats.
    renewed_from: str | None = None


class RxCheckRequest(BaseModel):
    """Activity input: the engine gets the patient facts from the record, not from the caller."""

    prescription_id: str
    patient_id: str
    draft: PrescriptionDraft


class PricedPrescription(BaseModel):
    total_fen: Fen
    lines: list[PricedLine]


class PricedLine(BaseModel):
    herb: str
    grams_total: float
    amount_fen: Fen


class SignPrescription(BaseModel):
    doctor_id: str
    # Needed when a finding asks for a second signature (超量/十八反…): the written reason. Signing a prescription
    # the pharmacist returned, unchanged, needs it too: the doctor's justification for forcing it through (8.3.1.4).
    reason: str | None = Field(default=None, max_length=500)


class RevisePrescription(BaseModel):
    doctor_id: str
    draft: PrescriptionDraft


class ReviewPrescription(BaseModel):
    pharmacist_id: str
    approve: bool
    reason: str = Field(default="", max_length=500)


class ClaimReview(BaseModel):
    """A pharmacist takes a prescription off the shared queue for `ttl_s`, so no one else reviews it meanwhile."""

    pharmacist_id: str
    ttl_s: int = Field(gt=0, le=24 * 3600)


class ForcedThrough(BaseModel):
    """Activity input: the doctor re-signed a returned prescription unchanged, with a justification (8.3.1.4)."""

    prescription_id: str
    revision: int
    # Which forced re-signing of the prescription this is (1, 2, …): keys the audit row, so a retry writes it once.
    count: int
    doctor_id: str
    justification: str
    returned_by: str | None
    return_reason: str | None


class PickupChoice(BaseModel):
    """What the patient confirms about getting the medicine (8.3.3.2, 8.3.6.2)."""

    pickup: PickupMethod
    # Delivery address and recipient; required for home delivery. Stored encrypted, never kept in workflow state.
    address: str | None = Field(default=None, max_length=300, examples=["北京市东城区东直门内南小街16号"])
    recipient: str | None = Field(default=None, max_length=50, examples=["张三"])
    phone: str | None = Field(default=None, pattern=r"^1\d{10}$", examples=["13800138000"])
    # The partner pharmacy (社会药房) the patient chose: where they pick up (required for `pharmacy`), or the one they
    # would like to deliver. Routing (activities/pharmacy_routing.py) decides the pharmacy in the end.
    pharmacy_id: str | None = Field(default=None, max_length=40, description="药店取药（或希望由其配送）的合作药店")
    # 代煎: the pharmacy decocts the herbs; only a pharmacy that can decoct may take the prescription.
    decoction_service: bool = Field(default=False, description="是否由药房代煎")

    @model_validator(mode="after")
    def _pharmacy_named(self) -> PickupChoice:
        if self.pickup is PickupMethod.PHARMACY and not self.pharmacy_id:
            raise ValueError("药店取药须选择药店")
        return self


class ConfirmPrescription(PickupChoice):
    patient_id: str


class SignRequest(BaseModel):
    """Activity input: sign the prescription as it stands at `revision`."""

    prescription_id: str
    revision: int
    patient_id: str
    draft: PrescriptionDraft
    signer_id: str
    reason: str | None = None

    def digest(self, signed_at: datetime) -> str:
        """What the signer signs: the SM3 digest of this request and the moment of signing, as canonical JSON."""
        return sm3_hex(canonical_json({**self.model_dump(mode="json"), "signed_at": signed_at.isoformat()}))


class PrescriptionState(BaseModel):
    prescription_id: str
    visit_id: str
    stage: RxStage
    check: CheckResult | None = None
    doctor_signatures: list[SignatureRecord] = []
    pharmacist_signature: SignatureRecord | None = None
    # The pharmacist's reason for the last return, and who returned it.
    review_reason: str | None = None
    returned_by: str | None = None
    # When the version under review was signed: the review queue orders by it and the SLA counts from it.
    submitted_at: datetime | None = None
    # Signed again unchanged over the pharmacist's return, with the doctor's justification (8.3.1.4); cleared by a
    # revision. `forced_count` counts every such re-signing of the prescription.
    forced: bool = False
    forced_reason: str | None = None
    forced_count: int = 0
    # The pharmacist reviewing it now (a claim on the shared queue) and until when the claim holds.
    claimed_by: str | None = None
    claim_expires_at: datetime | None = None
    total_fen: Fen | None = None
    pickup: PickupMethod | None = None
    bill_id: str | None = None
    pay_deadline: datetime | None = None
    pay_url: str | None = None
    void_reason: str | None = None
    revision: int = 0


PricedPrescription.model_rebuild()

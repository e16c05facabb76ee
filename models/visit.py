"""The online follow-up visit (挂号 → 接诊 → 复诊), 8.1.3 and 8.2."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from models.common import Fen
from models.prescription import PrescriptionDraft


class VisitStage(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    WAITING_DOCTOR = "waiting_doctor"
    IN_CONSULT = "in_consult"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    ABORTED = "aborted"
    NO_SHOW = "no_show"


class VisitInput(BaseModel):
    visit_id: str
    patient_id: str
    doctor_id: str
    slot_id: str
    disease_code: str
    fee_fen: Fen
    starts_at: datetime
    ends_at: datetime
    channel: str
    pay_window_s: int
    accept_window_s: int
    review_sla_s: int
    rx_pay_window_s: int
    delivery_sla_s: int


class BookingRequest(BaseModel):
    """The update that Update-with-Start sends with the booking: who is booking, for the validator."""

    patient_id: str


class LeaveChoice(StrEnum):
    REFUND = "refund"
    REBOOK = "rebook"


class LeaveOffer(BaseModel):
    """The doctor went on leave: the patient may rebook a slot of the same disease (at most this fee) or take a full
    refund, until the deadline; after it the refund happens by itself."""

    change_id: str
    reason: str
    doctor_name: str
    disease_code: str
    max_fee_fen: Fen
    refund_fen: Fen
    deadline: datetime


class VisitState(BaseModel):
    """Doctor, slot, times and fee are the current ones: a substitution or a rebooking changes them."""

    visit_id: str
    stage: VisitStage
    patient_id: str
    doctor_id: str
    slot_id: str
    starts_at: datetime
    ends_at: datetime
    fee_fen: Fen
    bill_id: str | None = None
    pay_deadline: datetime | None = None
    pay_url: str | None = None
    his_registration_no: str | None = None
    queue_no: int | None = None
    abort_reason: str | None = None
    # The doctor's advice to the patient when aborting (8.2.3.3).
    abort_advice: str | None = None
    refund_id: str | None = None
    refunded_fen: Fen = 0
    checked_in_at: datetime | None = None
    leave_offer: LeaveOffer | None = None
    record_written: bool = False
    record_signed: bool = False
    prescription_ids: list[str] = []
    # Exam orders (检查/检验) placed in the consult; each runs as its own flow.
    exam_order_ids: list[str] = []
    # Doctors invited into the consult (会诊), and those of them who signed their opinion.
    consultants: list[str] = []
    opinions: list[str] = []


class CancelVisit(BaseModel):
    patient_id: str
    reason: str = Field(min_length=1, max_length=500)


class CheckIn(BaseModel):
    patient_id: str


class ResolveLeave(BaseModel):
    patient_id: str
    choice: LeaveChoice
    slot_id: str | None = None


class SlotMoveRequest(BaseModel):
    visit_id: str
    patient_id: str
    from_slot_id: str
    to_slot_id: str
    disease_code: str
    max_fee_fen: Fen


class SlotMove(BaseModel):
    """The slot a rebooked visit moved to."""

    slot_id: str
    doctor_id: str
    doctor_name: str
    starts_at: datetime
    ends_at: datetime
    fee_fen: Fen


class AcceptVisit(BaseModel):
    doctor_id: str


class AbortVisit(BaseModel):
    doctor_id: str
    reason: str = Field(min_length=1, max_length=500)
    advice: str = Field(default="", max_length=2000)


# GB/T 15657-2021 codes: letters and digits in dot-separated groups, e.g. "A04.03.07" (病名) or "B02.01.03.01" (证候).
GBT15657_CODE = r"^[A-Z]{1,2}\d{2}(\.\d{2}){0,4}$"
# ICD-10 (GB/T 14396 / 国家临床版 2.0): a letter, two digits, optionally a dot and up to four more characters.
ICD10_CODE = r"^[A-Z]\d{2}(\.[0-9A-Z]{1,4})?(x\d{3})?$"


class TcmRecord(BaseModel):
    """The TCM medical record (中医病历), structured after 《中医病历书写基本规范》."""

    chief_complaint: str = Field(min_length=1, max_length=500, description="主诉")
    present_illness: str = Field(min_length=1, max_length=4000, description="现病史")
    past_history: str = Field(default="", max_length=4000, description="既往史")
    allergy_history: str = Field(default="", max_length=1000, description="过敏史")
    physical_exam: str = Field(default="", max_length=2000, description="体格检查（望闻问切所见及其他体征）")
    tongue: str = Field(min_length=1, max_length=500, description="舌象")
    pulse: str = Field(min_length=1, max_length=500, description="脉象")
    tcm_disease: str = Field(min_length=1, max_length=200, description="中医诊断·病名")
    tcm_disease_code: str | None = Field(default=None, pattern=GBT15657_CODE, description="病名编码（GB/T 15657）")
    tcm_syndrome: str = Field(min_length=1, max_length=200, description="中医诊断·证候")
    tcm_syndrome_code: str | None = Field(default=None, pattern=GBT15657_CODE, description="证候编码（GB/T 15657）")
    western_diagnosis: str = Field(default="", max_length=200, description="西医诊断")
    western_diagnosis_code: str | None = Field(default=None, pattern=ICD10_CODE, description="西医诊断编码（ICD-10）")
    treatment_principle: str = Field(min_length=1, max_length=500, description="治法")
    orders: str = Field(default="", max_length=2000, description="医嘱")


class WriteRecord(BaseModel):
    doctor_id: str
    record: TcmRecord


class Prescribe(BaseModel):
    doctor_id: str
    prescription_id: str
    draft: PrescriptionDraft
    # 续方: the earlier prescription of this patient whose items the draft repeats.
    renewed_from: str | None = None


class FinishVisit(BaseModel):
    doctor_id: str

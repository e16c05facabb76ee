"""After the medicine is paid for and delivered (8.3.3.3, 8.3.9.4): how to take it, and reports of adverse reactions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class DecoctionStep(BaseModel):
    """A special decoction method and the herbs of the prescription it applies to."""

    method: str = Field(description="先煎/后下/包煎/另煎/烊化/冲服")
    herbs: list[str]
    how: str = Field(description="操作方法")


class CautionKind(StrEnum):
    PREGNANCY_FORBIDDEN = "pregnancy_forbidden"
    PREGNANCY_CAUTION = "pregnancy_caution"
    CHILD_FORBIDDEN = "child_forbidden"
    TOXIC = "toxic"
    INCOMPATIBLE = "incompatible"
    RESTRAINT = "restraint"


class Caution(BaseModel):
    kind: CautionKind
    herbs: list[str]
    message: str
    source: str = ""


class MedicationGuidance(BaseModel):
    """用药指导: how to prepare and take one prescription, and what to avoid while taking it."""

    prescription_id: str
    usage: str = Field(description="医生写明的用法")
    doses: int = Field(description="剂数")
    days: int = Field(description="疗程天数")
    times_per_day: int | None = Field(default=None, description="每日服用次数（从用法中读出；读不出时为空）")
    volume_per_time: str | None = Field(default=None, description="每次服用量")
    decocted_by_pharmacy: bool = Field(description="药房代煎")
    preparation: list[str] = Field(description="煎服要点")
    decoction: list[DecoctionStep] = Field(description="特殊煎法")
    cautions: list[Caution] = Field(description="用药禁忌与注意事项")


class ReactionSeverity(StrEnum):
    MILD = "mild"
    MODERATE = "moderate"
    SEVERE = "severe"


class ReactionAction(StrEnum):
    """What the pharmacist advises."""

    CONTINUE = "continue"  # 继续服用，注意观察
    STOP = "stop"  # 停药
    SEE_DOCTOR = "see_doctor"  # 尽快就医


class AdverseReactionInput(BaseModel):
    report_id: str
    prescription_id: str
    patient_id: str
    doctor_id: str
    # The pharmacist who re-checked and dispensed it, told first; the pharmacists on duty are told too.
    dispensing_pharmacist_id: str | None = None
    severity: ReactionSeverity
    # What the patient describes; recorded by the first step and never kept in the flow's state.
    symptoms: str = Field(min_length=1, max_length=1000)
    began_at: datetime | None = None
    response_sla_s: int = Field(gt=0)


class AdverseReactionResponse(BaseModel):
    pharmacist_id: str
    action: ReactionAction
    advice: str = Field(min_length=1, max_length=1000)


class ReactionStage(StrEnum):
    OPEN = "open"
    RESPONDED = "responded"


class AdverseReactionState(BaseModel):
    report_id: str
    prescription_id: str
    stage: ReactionStage
    severity: ReactionSeverity
    # No pharmacist answered within the response SLA; the admins were told.
    overdue: bool = False
    response: AdverseReactionResponse | None = None
    responded_at: datetime | None = None

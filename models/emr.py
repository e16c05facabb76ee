"""What the hospital's EMR (电子病历) tells us: who a patient is there, their offline diagnoses, their documents.

The revisit check (8.1.2) rests on these: online care is only for a follow-up of a disease diagnosed at an offline
visit of this hospital within the window. `models.revisit.OfflineDiagnosis` is the evidence a decision stores;
`EmrDiagnosis` is the EMR's fuller record it is made from (every code the diagnosis carries, the setting).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel


class CodeKind(StrEnum):
    """Which classification a diagnosis code belongs to; adapters map the peer's code-system URIs to these."""

    ICD10 = "icd10"
    TCM_DISEASE = "tcm_disease"  # GB/T 15657 中医病名
    TCM_SYNDROME = "tcm_syndrome"  # GB/T 15657 中医证候
    LOCAL = "local"  # the hospital's own diagnosis catalogue (the codes of our `diseases` table)
    OTHER = "other"


class DiagnosisCode(BaseModel):
    kind: CodeKind
    system: str
    code: str
    display: str | None = None


class EncounterSetting(StrEnum):
    AMBULATORY = "ambulatory"  # 门诊
    EMERGENCY = "emergency"  # 急诊
    INPATIENT = "inpatient"  # 住院


class EmrPatient(BaseModel):
    """The EMR's record of a person whose name and ID-card number both matched."""

    ref: str  # how the EMR addresses the record, e.g. "Patient/123"; pass it back to the other calls
    name: str
    gender: str | None = None
    birth_date: date | None = None


class EmrDiagnosis(BaseModel):
    """One diagnosis made at one finished offline encounter of this hospital."""

    encounter_ref: str
    condition_ref: str | None = None
    name: str  # as the EMR shows it, e.g. "胃痞病"
    codes: list[DiagnosisCode]
    setting: EncounterSetting
    diagnosed_at: datetime  # when the encounter ended (or began, if it records no end); timezone-aware
    department: str | None = None
    practitioner: str | None = None

    def has_code(self, code: str, *kinds: CodeKind) -> bool:
        """Whether any code (of one of `kinds`, if given) equals `code`."""
        return any(c.code == code and (not kinds or c.kind in kinds) for c in self.codes)


class EmrAttachment(BaseModel):
    content_type: str | None = None
    title: str | None = None
    url: str | None = None
    size: int | None = None  # bytes
    sha1_hex: str | None = None
    language: str | None = None


class EmrDocument(BaseModel):
    """A document the EMR lists for the patient (门诊病历, 检查报告, 出院小结, …), for the doctor's preview."""

    ref: str
    title: str
    type: str | None = None
    created_at: datetime  # DocumentReference.date: when the EMR filed it
    encounter_refs: list[str] = []
    attachments: list[EmrAttachment] = []

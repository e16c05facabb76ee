"""The doctor's day (8.2.1–8.2.3): worklists, the preview before accepting, consultations (会诊) and the guardian of
a child under six (8.1.2.1 c)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from api.schemas.revisit_uploads import UploadOut
from api.services.signature_checks import SignatureState
from models import idcard
from models.revisit import RevisitDecision
from models.visit import TcmRecord, VisitStage

# The visit's own doctor, or one invited into its consult.
DoctorRole = Literal["attending", "consultant"]


class WorklistPatient(BaseModel):
    patient_id: str
    name_masked: str = Field(examples=["张*"])
    sex: str | None = Field(description="male / female")
    age: int | None


class WorklistItem(BaseModel):
    visit_id: str
    stage: VisitStage
    role: DoctorRole
    starts_at: datetime
    queue_no: int | None
    disease_code: str
    disease_name: str | None
    patient: WorklistPatient
    abort_reason: str | None


class Worklist(BaseModel):
    waiting: list[WorklistItem] = Field(description="待接诊，按就诊时间先后")
    in_consult: list[WorklistItem] = Field(description="接诊中，按就诊时间先后")
    finished: list[WorklistItem] = Field(description="已完成，最近的在前")


class PreviewPatient(BaseModel):
    patient_id: str
    name: str
    sex: str | None
    birth_date: date | None
    age: int | None


class EarlierRecord(BaseModel):
    """A signed record of an earlier visit of the patient, by whichever doctor wrote it."""

    visit_id: str
    visited_at: datetime
    doctor_name: str
    department: str
    record: TcmRecord
    signed_at: datetime


class VisitPreview(BaseModel):
    """What the doctor looks at before accepting (8.2.1.3, 8.2.3.1): who the patient is, the revisit evidence, the
    patient's earlier records and the records they uploaded."""

    visit_id: str
    stage: VisitStage
    role: DoctorRole
    starts_at: datetime
    disease_code: str
    disease_name: str | None
    patient: PreviewPatient
    child_under_six: bool
    guardian_recorded: bool
    warnings: list[str] = Field(description="须医生留意的提示（中文）")
    revisit: RevisitDecision | None = Field(description="该病种的复诊预判结论及依据")
    earlier_records: list[EarlierRecord]
    uploads: list[UploadOut]


class InviteIn(BaseModel):
    consultant_id: str = Field(min_length=1, max_length=40, examples=["doc-3"])
    reason: str = Field(min_length=1, max_length=500, examples=["失眠伴心悸，请心血管科会诊"])


class OpinionIn(BaseModel):
    opinion: str = Field(min_length=1, max_length=4000, examples=["证属心脾两虚，建议归脾汤加减。"])


class ConsultantOut(BaseModel):
    doctor_id: str
    name: str
    title: str
    department: str
    invited_by: str
    reason: str
    invited_at: datetime
    opinion: str | None
    opinion_at: datetime | None
    signature_state: SignatureState | None = Field(description="会诊意见的签名（此刻重新验证）；未出具时为空")


class GuardianIn(BaseModel):
    guardian_name: str = Field(min_length=1, max_length=50, examples=["张建国"])
    guardian_id_card_no: str = Field(min_length=18, max_length=18, examples=["110101198001010010"])
    relationship: str = Field(min_length=1, max_length=16, examples=["父亲"])
    physician_name: str = Field(min_length=1, max_length=50, examples=["刘医生"])
    physician_licence_no: str = Field(
        min_length=1, max_length=32, pattern=r"^[0-9A-Za-z]+$", description="陪诊医师的执业证书编码"
    )

    @field_validator("guardian_id_card_no")
    @classmethod
    def _valid_number(cls, number: str) -> str:
        if not idcard.is_valid(number):
            raise ValueError("身份证号码不正确")
        return idcard.normalize(number)


class GuardianOut(BaseModel):
    visit_id: str
    guardian_name: str
    guardian_id_card_masked: str = Field(examples=["110***********0010"])
    relationship: str
    physician_name: str
    physician_licence_no: str
    recorded_by: str
    recorded_at: datetime

"""Complaints about an order (8.6.7 e 投诉处理): a patient complains about one of their visits or prescriptions; the
`Complaint` flow (`complaint-{id}`) tells the admins, reminds them until someone answers, escalates once the answer is
overdue, and tells the patient the answer. A complaint is never closed by the clock: only an answer ends it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class ComplaintCategory(StrEnum):
    SERVICE = "service"
    DIAGNOSIS = "diagnosis"
    MEDICATION = "medication"
    DELIVERY = "delivery"
    BILLING = "billing"
    OTHER = "other"


CATEGORY_NAMES: dict[ComplaintCategory, str] = {
    ComplaintCategory.SERVICE: "服务态度",
    ComplaintCategory.DIAGNOSIS: "诊疗质量",
    ComplaintCategory.MEDICATION: "药品质量",
    ComplaintCategory.DELIVERY: "配送",
    ComplaintCategory.BILLING: "收费",
    ComplaintCategory.OTHER: "其他",
}


class ComplaintSubject(StrEnum):
    """What the complaint is about: one of the patient's own orders."""

    VISIT = "visit"
    PRESCRIPTION = "prescription"


class ComplaintStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"


class ComplaintInput(BaseModel):
    complaint_id: str
    # Who hears the answer, as the notices address a patient (`patient:<id>`).
    patient_ref: str
    # The complained order and the category, as the notices word them (zh-CN).
    subject: str
    category_name: str
    text: str = Field(min_length=1, max_length=1000)
    # The answer is due this long after the complaint (settings.complaint_answer_within_s); until then the admins
    # are reminded this often (settings.complaint_remind_every_s).
    answer_within_s: int = Field(gt=0)
    remind_every_s: int = Field(gt=0)


class ComplaintResponse(BaseModel):
    """The hospital's answer (an Update): who answered and what the patient is told."""

    responder_id: str = Field(min_length=1, max_length=40)
    response: str = Field(min_length=1, max_length=1000)


class ComplaintState(BaseModel):
    complaint_id: str
    status: ComplaintStatus
    response: str | None = None
    responded_by: str | None = None
    responded_at: datetime | None = None
    due_at: datetime | None = None
    # The deadline passed unanswered and every admin was told; the complaint still waits for its answer.
    escalated: bool = False

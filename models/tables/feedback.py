"""Patients' word on the service (8.6.7): evaluations of a concluded visit, and complaints about an order."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint
from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


class Evaluation(SQLModel, table=True):
    """A patient's satisfaction with the hospital, the department and the doctor after one visit. Never deleted:
    hiding it from public display takes an admin's recorded reason (8.6.7 c)."""

    __tablename__ = "evaluations"
    __table_args__ = (
        CheckConstraint(
            "doctor_rating BETWEEN 1 AND 5 AND department_rating BETWEEN 1 AND 5 AND hospital_rating BETWEEN 1 AND 5",
            name="evaluation_ratings",
        ),
        CheckConstraint("visibility IN ('public', 'hidden')", name="evaluation_visibility"),
        CheckConstraint("handling IN ('none', 'pending', 'handled')", name="evaluation_handling"),
    )

    id: str = Field(primary_key=True, max_length=40)
    visit_id: str = Field(foreign_key="visits.id", unique=True, max_length=80)
    patient_id: str = Field(foreign_key="patients.id", index=True, max_length=40)
    doctor_id: str = Field(foreign_key="doctors.id", index=True, max_length=40)
    department_id: str = Field(foreign_key="departments.id", index=True, max_length=40)
    doctor_rating: int
    department_rating: int
    hospital_rating: int
    comment: str = ""
    visibility: str = Field(default="public", max_length=8)
    hidden_reason: str | None = None
    hidden_by: str | None = Field(default=None, max_length=40)
    hidden_at: datetime | None = Timestamp(nullable=True)
    # A low rating waits for staff to follow it up (pending → handled, with what was done); others need nothing.
    handling: str = Field(default="none", max_length=8, index=True)
    handled_by: str | None = Field(default=None, max_length=40)
    handled_at: datetime | None = Timestamp(nullable=True)
    handling_note: str | None = None
    created_at: datetime = Timestamp(default_now=True)


class Complaint(SQLModel, table=True):
    """A patient's complaint about one of their orders (a visit or a prescription); the `Complaint` flow reminds the
    staff until it is answered and tells the patient the answer (8.6.7 e)."""

    __tablename__ = "complaints"
    __table_args__ = (
        CheckConstraint("subject_type IN ('visit', 'prescription')", name="complaint_subject"),
        CheckConstraint("status IN ('open', 'answered')", name="complaint_status"),
    )

    id: str = Field(primary_key=True, max_length=40)
    patient_id: str = Field(foreign_key="patients.id", index=True, max_length=40)
    subject_type: str = Field(max_length=16)
    subject_id: str = Field(max_length=80)
    category: str = Field(max_length=16)
    text: str
    status: str = Field(default="open", max_length=8, index=True)
    response: str | None = None
    responded_by: str | None = Field(default=None, max_length=40)
    responded_at: datetime | None = Timestamp(nullable=True)
    # When the answer's deadline passed unanswered and the complaint went to every admin.
    escalated_at: datetime | None = Timestamp(nullable=True)
    created_at: datetime = Timestamp(default_now=True)

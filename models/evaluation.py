"""Patients' evaluations of a concluded visit (服务评价管理, 8.6.7 a–d).

A patient rates the doctor, the department and the hospital once per concluded visit, within a window after it, with
an optional comment. Evaluations are shown publicly unless an admin hides one, with a recorded reason; none is ever
deleted. A rating at or below `LOW_RATING` is followed up: the `EvaluationFollowUp` flow tells the staff who handle
feedback and reminds them until one records what was done.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

LOW_RATING = 2


class EvaluationFollowUpInput(BaseModel):
    evaluation_id: str
    visit_id: str
    doctor_name: str
    doctor_rating: int
    department_rating: int
    hospital_rating: int
    comment: str
    remind_every_s: int


class HandleEvaluation(BaseModel):
    """What the staff did about it (a call to the patient, a talk with the doctor …)."""

    handled_by: str
    note: str = Field(min_length=1, max_length=1000)


class EvaluationFollowUpState(BaseModel):
    handled: bool = False
    handled_by: str | None = None
    note: str | None = None
    reminders: int = 0

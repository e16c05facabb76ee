"""A doctor's leave (停诊) or substitution (替诊) of one schedule, 8.1.1.5 and 8.1.3.

The ScheduleChange flow records the change, tells every Visit on the schedule's slots, and follows each of them until
its patient has an outcome: the substitute took over, the patient rebooked, or the fee went back.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel


class ChangeKind(StrEnum):
    LEAVE = "leave"
    SUBSTITUTION = "substitution"


class ChangeStatus(StrEnum):
    RECORDING = "recording"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    REFUSED = "refused"


class VisitOutcome(StrEnum):
    PENDING = "pending"  # told, no answer yet
    OFFERED = "offered"  # leave: the patient is choosing between rebooking and a refund
    SUBSTITUTED = "substituted"
    REBOOKED = "rebooked"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"  # unpaid: the booking was cancelled and its bill closed
    NOT_AFFECTED = "not_affected"  # already in consult, ended, or moved to another slot


FINAL_OUTCOMES = frozenset(
    {
        VisitOutcome.SUBSTITUTED,
        VisitOutcome.REBOOKED,
        VisitOutcome.REFUNDED,
        VisitOutcome.CANCELLED,
        VisitOutcome.NOT_AFFECTED,
    }
)


class ScheduleChangeInput(BaseModel):
    change_id: str
    schedule_id: str
    kind: ChangeKind
    doctor_id: str
    doctor_name: str
    starts_at: datetime
    substitute_doctor_id: str | None = None
    substitute_name: str | None = None
    reason: str
    requested_by: str
    # Leave: how long patients have to choose rebooking or a refund before the refund happens by itself.
    choice_window_s: int


class AffectedVisit(BaseModel):
    """One visit holding a slot of the schedule, and how far its patient got."""

    visit_id: str
    slot_id: str
    patient_id: str
    outcome: VisitOutcome = VisitOutcome.PENDING
    detail: str = ""


class ScheduleChangeState(BaseModel):
    change_id: str
    schedule_id: str
    kind: ChangeKind
    status: ChangeStatus
    reason: str
    substitute_doctor_id: str | None = None
    choice_deadline: datetime | None = None
    refusal_code: str | None = None
    refusal: str | None = None
    visits: list[AffectedVisit] = []


class ScheduleChangeNotice(BaseModel):
    """What the ScheduleChange flow signals to each Visit; the Visit answers `reply_to` with its progress."""

    change_id: str
    reply_to: str
    kind: ChangeKind
    slot_id: str
    reason: str
    doctor_name: str
    substitute_doctor_id: str | None = None
    substitute_name: str | None = None
    choice_deadline: datetime


class VisitChangeProgress(BaseModel):
    change_id: str
    visit_id: str
    outcome: VisitOutcome
    detail: str = ""

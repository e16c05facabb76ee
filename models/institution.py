"""Medical institution registration with the provincial supervision platform (8.5.4, 医疗机构身份认证).

The hospital records its institution details (number, name, type, the IP addresses it connects from), submits them
to the supervision platform (医疗服务与执业监管平台), waits for the platform's approval and then verifies the
registration through the platform's institution look-up. The `InstitutionRegistration` flow does all three.

An approved institution is looked up again (8.5.4.4 real-time verification): every day by a Schedule and whenever an
admin asks. The `InstitutionReverification` flow records each answer; when the platform no longer confirms the
institution (its licence revoked or expired, its record gone) the institution is suspended, and while any institution
is suspended the hospital takes no new bookings (8.5.4.2: internet diagnosis only while the registration stands).
Only an admin's re-verification that the platform confirms lifts a suspension.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class InstitutionStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"  # waiting for the platform's approval
    APPROVED = "approved"
    REJECTED = "rejected"
    # Approved once; a later look-up found the platform no longer confirms it. No new bookings while it lasts.
    SUSPENDED = "suspended"


class RegistrationState(StrEnum):
    """What the platform says of a registration it received."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class InstitutionFiling(BaseModel):
    """The details the platform registers (8.5.4.1)."""

    code: str = Field(description="机构编号（登记号）")
    name: str
    kind: str = Field(description="机构类型")
    licence_no: str = Field(description="医疗机构执业许可证登记号")
    access_ips: list[str]


class RegistrationReceipt(BaseModel):
    """The platform's acknowledgement: its reference for the registration."""

    platform_ref: str
    received_at: datetime


class RegistrationStatus(BaseModel):
    state: RegistrationState
    reason: str | None = None
    decided_at: datetime | None = None


class InstitutionRecord(BaseModel):
    """The platform's institution look-up (8.5.4.3–8.5.4.4)."""

    found: bool
    code: str
    name: str | None = None
    kind: str | None = None
    approved: bool = False


class InstitutionInput(BaseModel):
    institution_id: str
    # Which submission this run makes (1, 2, … after a rejection); part of the platform's idempotency key.
    attempt: int = Field(ge=1)
    # Seconds between asking the platform whether it has decided.
    poll_every_s: int = Field(default=600, gt=0)


class Verification(BaseModel):
    """The look-up after approval: the platform knows the institution, approved, under the same name and type."""

    verified: bool
    detail: str
    checked_at: datetime
    # What the platform answered (absent in verifications recorded before it was kept).
    record: InstitutionRecord | None = None


class InstitutionState(BaseModel):
    institution_id: str
    attempt: int
    status: InstitutionStatus
    platform_ref: str | None = None
    reason: str | None = None
    verification: Verification | None = None


# Who re-verifies when no admin asked: the Schedule.
SYSTEM_CHECKER = "system"


class ReverificationInput(BaseModel):
    """Institutions to look up again: the one an admin asked for, or (`None`) every approved one, as the Schedule
    runs it."""

    institution_ids: list[str] | None = None
    requested_by: str = SYSTEM_CHECKER


class ReverificationCheck(BaseModel):
    """One look-up of one institution; `check_id` keys its record and the platform call."""

    check_id: str
    institution_id: str
    requested_by: str


class ReverificationResult(BaseModel):
    check_id: str
    institution_id: str
    code: str
    name: str
    status_before: InstitutionStatus
    status_after: InstitutionStatus
    verification: Verification


def status_after_reverification(before: InstitutionStatus, verified: bool, requested_by: str) -> InstitutionStatus:
    """Approved and not confirmed: suspended. Suspended and confirmed: approved again, but only when an admin asked
    (a person lifts a suspension, not the next scheduled look-up). Anything else (e.g. submitted again meanwhile)
    keeps its status."""
    if before is InstitutionStatus.APPROVED and not verified:
        return InstitutionStatus.SUSPENDED
    if before is InstitutionStatus.SUSPENDED and verified and requested_by != SYSTEM_CHECKER:
        return InstitutionStatus.APPROVED
    return before

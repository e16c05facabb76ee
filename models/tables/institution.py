"""The hospital's registration with the provincial supervision platform (8.5.4), and each later look-up of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Boolean, CheckConstraint, Column, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


class Institution(SQLModel, table=True):
    __tablename__ = "institutions"
    __table_args__ = (
        CheckConstraint(
            "status IN ('draft', 'submitted', 'approved', 'rejected', 'suspended')", name="institution_status"
        ),
    )

    id: str = Field(primary_key=True, max_length=40)
    # 机构编号 (the registration number the platform knows the institution by).
    code: str = Field(unique=True, max_length=32)
    name: str = Field(max_length=100)
    kind: str = Field(max_length=32)
    licence_no: str = Field(max_length=40)
    access_ips: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(String(64)), nullable=False, server_default=text("'{}'")),
    )
    status: str = Field(default="draft", max_length=16)
    # Submissions so far; the flow making submission n runs with attempt n.
    attempt: int = 0
    platform_ref: str | None = Field(default=None, max_length=64)
    reason: str | None = None
    submitted_at: datetime | None = Timestamp(nullable=True)
    decided_at: datetime | None = Timestamp(nullable=True)
    # The platform look-up after approval (models.institution.Verification), and when it said yes.
    verification: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    verified_at: datetime | None = Timestamp(nullable=True)
    # Since when the platform no longer confirms it (status suspended); `reason` says what it answered.
    suspended_at: datetime | None = Timestamp(nullable=True)
    created_by: str | None = Field(default=None, max_length=40)
    created_at: datetime = Timestamp(default_now=True)


class InstitutionReverification(SQLModel, table=True):
    """One re-verification of an institution through the platform's look-up (8.5.4.4): who asked, when, what the
    platform answered and what it did to the institution's status. Never changed once written."""

    __tablename__ = "institution_reverifications"

    # `{run id}:{institution id}` of the InstitutionReverification flow that made it.
    id: str = Field(primary_key=True, max_length=120)
    institution_id: str = Field(foreign_key="institutions.id", index=True, max_length=40)
    # The admin's user id, or "system" for the Schedule.
    requested_by: str = Field(max_length=40)
    checked_at: datetime = Timestamp()
    verified: bool = Field(sa_column=Column(Boolean, nullable=False))
    detail: str
    # The platform's answer (models.institution.InstitutionRecord).
    platform_record: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    status_before: str = Field(max_length=16)
    status_after: str = Field(max_length=16)
    created_at: datetime = Timestamp(default_now=True)

"""Staff onboarding (8.5.2, 8.5.3): applications of doctors and pharmacists and the documents they upload.

The ID-card number and phone are SM4-GCM ciphertext (`core.crypto.sm.FieldCipher`) with a blind index on the ID-card
number; uploaded files are sealed like consultation media (api/services/sealed_files.py), bound to their row.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, LargeBinary
from sqlmodel import Field, SQLModel

from models.tables._types import Json, Timestamp


class StaffApplication(SQLModel, table=True):
    """One person's application; its id becomes the doctor's or pharmacist's id once approved."""

    __tablename__ = "staff_applications"
    __table_args__ = (
        CheckConstraint("role IN ('doctor', 'pharmacist')", name="staff_application_role"),
        CheckConstraint(
            "status IN ('draft', 'checking', 'awaiting_review', 'approved', 'rejected')",
            name="staff_application_status",
        ),
        CheckConstraint("role = 'pharmacist' OR department_id IS NOT NULL", name="staff_application_department"),
    )

    id: str = Field(primary_key=True, max_length=40)
    user_id: str = Field(foreign_key="users.id", unique=True, max_length=40)
    role: str = Field(max_length=16)
    # hospital, or third_party (pharmacists of a partner institution, 8.5.3.2).
    affiliation: str = Field(default="hospital", max_length=16)
    name: str = Field(max_length=32)
    id_card_enc: str
    # One application per person: an applicant turned down submits again on the same application.
    id_card_index: str = Field(unique=True, max_length=64)
    phone_enc: str
    department_id: str | None = Field(default=None, foreign_key="departments.id", max_length=40)
    title: str | None = Field(default=None, max_length=32)
    licence_no: str = Field(max_length=32)
    # The practice licence's date (first registration): independent practice is counted from it.
    licence_date: date
    # The institution the applicant is registered at (执业机构).
    institution: str | None = Field(default=None, max_length=100)
    # self (registered themselves) or import (created in a batch by an admin).
    source: str = Field(default="self", max_length=8)
    created_by: str | None = Field(default=None, max_length=40)
    status: str = Field(default="draft", max_length=16, index=True)
    # Submissions so far; the flow checking submission n runs as `onboard-{id}` with attempt n.
    attempt: int = 0
    checks: list[dict[str, Any]] = Json(default=[])
    decided_by: str | None = Field(default=None, max_length=40)
    decided_at: datetime | None = Timestamp(nullable=True)
    reason: str | None = None
    submitted_at: datetime | None = Timestamp(nullable=True)
    # When the admins' review is due once the checks passed, and when it was escalated for having passed that
    # deadline undecided (the application stays awaiting review).
    review_due_at: datetime | None = Timestamp(nullable=True)
    escalated_at: datetime | None = Timestamp(nullable=True)
    created_at: datetime = Timestamp(default_now=True)


class StaffDocument(SQLModel, table=True):
    """An uploaded ID photo, licence or agreement. `sm3` and `size_bytes` describe the plaintext."""

    __tablename__ = "staff_documents"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('id_photo', 'id_card', 'practice_licence', 'qualification', 'institution_licence', 'agreement')",
            name="staff_document_kind",
        ),
        CheckConstraint("size_bytes > 0", name="staff_document_size"),
    )

    id: str = Field(primary_key=True, max_length=40)
    staff_id: str = Field(foreign_key="staff_applications.id", index=True, max_length=40)
    kind: str = Field(max_length=24)
    content_type: str = Field(max_length=64)
    size_bytes: int
    sm3: str = Field(max_length=64)
    data_enc: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    uploaded_by: str = Field(foreign_key="users.id", max_length=40)
    # The evidence ledger entry of its digest, once the onboarding flow has put it on record.
    ledger_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = Timestamp(default_now=True)

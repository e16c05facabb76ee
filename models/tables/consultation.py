"""Who takes part in a visit's consult besides its own doctor (会诊, 8.2.3.5), and the opinions they signed.

Written by the Visit flow's steps; read by access checks (an invited doctor may see the visit, join its chat and
prescribe in it), the doctor's worklist and the visit's consultation list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


class VisitConsultant(SQLModel, table=True):
    __tablename__ = "visit_consultants"

    visit_id: str = Field(primary_key=True, foreign_key="visits.id", max_length=80)
    doctor_id: str = Field(primary_key=True, foreign_key="doctors.id", index=True, max_length=40)
    invited_by: str = Field(foreign_key="doctors.id", max_length=40)
    reason: str
    invited_at: datetime = Timestamp(default_now=True)
    # The consultant's opinion (会诊意见) and their signature over it (a models.signature.SignatureRecord); once
    # signed it never changes.
    opinion: str | None = None
    opinion_signature: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    opinion_at: datetime | None = Timestamp(nullable=True)

"""Multi-doctor consultation (会诊, 8.2.3.5): the visit's doctor invites other doctors into the consult; each gives a
signed opinion and may prescribe in the visit."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from core.crypto.sm import sm3_hex
from models.signature import canonical_json

# More doctors than this in one consult is a case for an offline consultation, not an online one.
MAX_CONSULTANTS = 5


class InviteConsultant(BaseModel):
    # The visit's own (attending) doctor, who invites.
    doctor_id: str
    consultant_id: str = Field(min_length=1, max_length=40)
    reason: str = Field(min_length=1, max_length=500)


class GiveOpinion(BaseModel):
    # The invited doctor giving the opinion.
    doctor_id: str
    opinion: str = Field(min_length=1, max_length=4000)


def opinion_digest(visit_id: str, doctor_id: str, opinion: str, signed_at: datetime) -> str:
    """What the consultant signs: the opinion, on which visit, whose, and when."""
    signed = {"visit_id": visit_id, "doctor_id": doctor_id, "opinion": opinion, "signed_at": signed_at.isoformat()}
    return sm3_hex(canonical_json(signed))

"""The hospital's HIS/EMR: offline diagnoses for the revisit check, and registration into the visit queue."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from models.revisit import OfflineDiagnosis


class HisRegistration(BaseModel):
    his_registration_no: str
    queue_no: int


class PatientIdentity(BaseModel):
    """What HIS matches a person on. Built inside activities from decrypted columns; never put in workflow payloads."""

    name: str
    id_card_no: str


@runtime_checkable
class His(Protocol):
    async def find_diagnoses(
        self, *, patient: PatientIdentity, disease_code: str, since: datetime
    ) -> list[OfflineDiagnosis]: ...

    async def register_visit(
        self,
        *,
        idempotency_key: str,
        patient: PatientIdentity,
        visit_id: str,
        doctor_code: str,
        starts_at: datetime,
    ) -> HisRegistration: ...

    async def cancel_registration(self, *, idempotency_key: str, his_registration_no: str) -> None: ...

"""A visit ready to chat about: its patient and doctor accounts, and the visit row as the Visit workflow keeps it.

The chat reads only that read model, so tests write it directly in whatever stage they need.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from core.crypto.sm import FieldCipher
from models import idcard
from models.common import Role
from models.prescription import PrescriptionDraft
from models.tables import Patient, Prescription, Slot, Visit
from tests.api.helpers import make_department, make_disease, make_slot, make_user, unique


@dataclass(frozen=True)
class ConsultVisit:
    visit_id: str
    patient_user: str
    patient_id: str
    doctor_user: str
    doctor_id: str


async def make_consult_visit(
    sessions: async_sessionmaker[AsyncSession],
    *,
    stage: str = "in_consult",
    service_type: str = "video",
    updated_at: datetime | None = None,
) -> ConsultVisit:
    department_id = await make_department(sessions)
    disease = await make_disease(sessions, department_id)
    patient_user, patient_id = await make_user(sessions, Role.PATIENT, display_name="患者甲")
    doctor_user, doctor_id = await make_user(sessions, Role.DOCTOR, display_name="李医生", department_id=department_id)
    assert patient_id is not None and doctor_id is not None
    starts_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    slot_id = await make_slot(sessions, doctor_id, disease, starts_at, status="booked")
    visit_id = unique("visit")
    async with sessions() as session, session.begin():
        await session.execute(update(Slot).where(col(Slot.id) == slot_id).values(service_type=service_type))
        session.add(
            Visit(
                id=visit_id,
                patient_id=patient_id,
                doctor_id=doctor_id,
                slot_id=slot_id,
                disease_code=disease,
                stage=stage,
                fee_fen=5000,
                starts_at=starts_at,
                updated_at=updated_at or datetime.now(UTC),
            )
        )
    return ConsultVisit(visit_id, patient_user, patient_id, doctor_user, doctor_id)


async def make_prescription(
    sessions: async_sessionmaker[AsyncSession], visit: ConsultVisit, stage: str, draft: PrescriptionDraft, **extra: Any
) -> str:
    """A prescription of the visit's doctor for its patient, as the Prescription workflow's read model holds it."""
    rx_id = f"{visit.visit_id}-rx{uuid.uuid4().hex[:6]}"
    async with sessions() as session, session.begin():
        session.add(
            Prescription(
                id=rx_id,
                visit_id=visit.visit_id,
                patient_id=visit.patient_id,
                doctor_id=visit.doctor_id,
                stage=stage,
                draft=draft.model_dump(mode="json"),
                **extra,
            )
        )
    return rx_id


async def give_identity(
    sessions: async_sessionmaker[AsyncSession], cipher: FieldCipher, patient_id: str, name: str
) -> str:
    """The patient's real-name data as verification leaves it (a new valid ID card number, returned)."""
    number = idcard.random_valid()
    async with sessions() as session, session.begin():
        await session.execute(
            update(Patient)
            .where(col(Patient.id) == patient_id)
            .values(
                name_enc=cipher.encrypt("name", name),
                id_card_enc=cipher.encrypt("id_card", number),
                id_card_index=cipher.blind_index("id_card", number),
                sex=idcard.sex(number),
                birth_date=idcard.birth_date(number),
            )
        )
    return number

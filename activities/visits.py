"""Visit steps: the slot, HIS registration, the read model, the medical record."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.adapters.his import His, HisRegistration, PatientIdentity
from activities.errors import business_error, refusals_are_final
from core.crypto.sm import FieldCipher, sm3_hex
from models.tables import Doctor, MedicalRecord, Patient, Slot, Visit
from models.visit import VisitInput, VisitState, WriteRecord


async def load_identity(session: AsyncSession, cipher: FieldCipher, patient_id: str) -> PatientIdentity:
    """The decrypted identity HIS matches on. It stays inside the activity."""
    row = (
        await session.execute(
            select(col(Patient.name_enc), col(Patient.id_card_enc)).where(col(Patient.id) == patient_id)
        )
    ).first()
    if row is None or row.id_card_enc is None or row.name_enc is None:
        raise business_error("IDENTITY_MISSING", "患者尚未完成实名信息登记")
    return PatientIdentity(
        name=cipher.decrypt("name", row.name_enc) or "", id_card_no=cipher.decrypt("id_card", row.id_card_enc) or ""
    )


class VisitActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], cipher: FieldCipher, his: His) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._his = his

    @activity.defn
    async def record_visit(self, visit: VisitInput, state: VisitState) -> None:
        values = {
            "stage": state.stage.value,
            "bill_id": state.bill_id,
            "his_registration_no": state.his_registration_no,
            "queue_no": state.queue_no,
            "abort_reason": state.abort_reason,
            "updated_at": datetime.now(UTC),
        }
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(Visit)
                .values(
                    id=visit.visit_id,
                    patient_id=visit.patient_id,
                    doctor_id=visit.doctor_id,
                    slot_id=visit.slot_id,
                    disease_code=visit.disease_code,
                    fee_fen=visit.fee_fen,
                    starts_at=visit.starts_at,
                    **values,
                )
                .on_conflict_do_update(index_elements=["id"], set_=values)
            )

    @activity.defn
    async def confirm_slot(self, visit: VisitInput) -> None:
        """Held → booked once paid. The hold belongs to this visit even if its window lapsed meanwhile,
        unless another booking took the slot, in which case the visit cannot go on."""
        async with self._sessions() as session, session.begin():
            booked = (
                await session.execute(
                    update(Slot)
                    .where(col(Slot.id) == visit.slot_id, col(Slot.visit_id) == visit.visit_id)
                    .values(status="booked", held_until=None)
                    .returning(col(Slot.id))
                )
            ).scalar()
        if booked is None:
            raise business_error("SLOT_LOST", "号源已被他人预约")

    @activity.defn
    async def release_slot(self, visit: VisitInput) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Slot)
                .where(col(Slot.id) == visit.slot_id, col(Slot.visit_id) == visit.visit_id)
                .values(status="open", visit_id=None, patient_id=None, held_until=None)
            )

    @activity.defn
    async def register_with_his(self, visit: VisitInput) -> HisRegistration:
        async with self._sessions() as session:
            identity = await load_identity(session, self._cipher, visit.patient_id)
            doctor_code = (
                await session.execute(select(col(Doctor.his_code)).where(col(Doctor.id) == visit.doctor_id))
            ).scalar()
        return await refusals_are_final(
            self._his.register_visit(
                idempotency_key=f"{visit.visit_id}:his-register",
                patient=identity,
                visit_id=visit.visit_id,
                doctor_code=doctor_code or visit.doctor_id,
                starts_at=visit.starts_at,
            )
        )

    @activity.defn
    async def cancel_his_registration(self, visit_id: str, his_registration_no: str) -> None:
        await self._his.cancel_registration(
            idempotency_key=f"{visit_id}:his-cancel", his_registration_no=his_registration_no
        )

    @activity.defn
    async def save_medical_record(self, visit: VisitInput, write: WriteRecord) -> str:
        """Store the structured record with the SM3 digest of its canonical JSON; returns the digest."""
        content = write.record.model_dump()
        digest = sm3_hex(json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode())
        values = {"content": content, "digest": digest, "written_at": datetime.now(UTC)}
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(MedicalRecord)
                .values(visit_id=visit.visit_id, patient_id=visit.patient_id, doctor_id=write.doctor_id, **values)
                .on_conflict_do_update(index_elements=["visit_id"], set_=values)
            )
        return digest

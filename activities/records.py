"""The TCM medical record's steps (8.2.4): store it while the doctor writes it, then sign it, which locks it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.errors import business_error
from activities.signatures import Signatures
from core.crypto.sm import sm3_hex
from models.record import record_digest
from models.signature import SignatureRecord, canonical_json
from models.tables import MedicalRecord
from models.visit import VisitInput, WriteRecord

RECORD_SIGNED = ("RECORD_SIGNED", "病历已签名，不能再修改；如需更正请添加补充记录")


class RecordActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], signatures: Signatures) -> None:
        self._sessions = sessions
        self._signatures = signatures

    @activity.defn
    async def save_medical_record(self, visit: VisitInput, write: WriteRecord) -> str:
        """Store the structured record with the SM3 digest of its canonical JSON; returns the digest. A signed record
        is never overwritten."""
        content = write.record.model_dump()
        digest = sm3_hex(canonical_json(content))
        values = {"content": content, "digest": digest, "written_at": datetime.now(UTC)}
        async with self._sessions() as session, session.begin():
            saved = await session.execute(
                insert(MedicalRecord)
                .values(visit_id=visit.visit_id, patient_id=visit.patient_id, doctor_id=write.doctor_id, **values)
                .on_conflict_do_update(
                    index_elements=["visit_id"], set_=values, where=col(MedicalRecord.signed_at).is_(None)
                )
                .returning(col(MedicalRecord.visit_id))
            )
            if saved.first() is None:
                raise business_error(*RECORD_SIGNED)
        return digest

    @activity.defn
    async def sign_medical_record(self, visit: VisitInput, doctor_id: str) -> SignatureRecord:
        """The doctor's SM2 signature over the record as stored, timestamped; stored with it, which locks it. A retry
        after the signature was stored answers with that signature."""
        async with self._sessions() as session:
            record = await session.get(MedicalRecord, visit.visit_id)
        if record is None:
            raise business_error("RECORD_REQUIRED", "请先书写病历再签名")
        if record.signature is not None:
            return SignatureRecord.model_validate(record.signature)
        signed_at = datetime.now(UTC)
        digest = record_digest(visit.visit_id, doctor_id, record.content, signed_at)
        signature = await self._signatures.sign(
            doctor_id, digest, signed_at, None, kind="record.signed", subject=f"visit:{visit.visit_id}"
        )
        async with self._sessions() as session, session.begin():
            stored = await session.execute(
                update(MedicalRecord)
                .where(col(MedicalRecord.visit_id) == visit.visit_id, col(MedicalRecord.signed_at).is_(None))
                .values(signature=signature.model_dump(mode="json"), signed_at=signed_at)
                .returning(col(MedicalRecord.visit_id))
            )
            if stored.first() is None:  # signed meanwhile by an earlier attempt of this activity
                raced = await session.get(MedicalRecord, visit.visit_id)
                assert raced is not None and raced.signature is not None
                return SignatureRecord.model_validate(raced.signature)
        return signature

"""Sandbox HIS: offline diagnoses looked up by the SM3 digest of the ID-card number, and a per-doctor daily queue."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.errors import AdapterRefusal
from activities.adapters.his import HisRegistration, PatientIdentity
from activities.adapters.sandbox import CALLS, SandboxRecorder, recorder_for, table
from core.crypto.sm import sm3_hex
from core.settings import Settings
from models import idcard
from models.revisit import OfflineDiagnosis
from models.tables.sandbox import SandboxHisDiagnosis

SYSTEM = "his"
_diagnoses = table(SandboxHisDiagnosis)
# The hospital's working day is the Shanghai calendar day, whatever the UTC date.
_LOCAL = ZoneInfo("Asia/Shanghai")


def id_card_digest(id_card_no: str) -> str:
    # Normalized first, so "…123x" and "…123X " find the same person.
    return sm3_hex(idcard.normalize(id_card_no).encode())


class SandboxHis:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._recorder = recorder_for(sessions, settings)

    async def find_diagnoses(
        self, *, patient: PatientIdentity, disease_code: str, since: datetime
    ) -> list[OfflineDiagnosis]:
        digest = id_card_digest(patient.id_card_no)
        await self._recorder.gate(SYSTEM, "find_diagnoses", f"{digest}:{disease_code}")
        async with self._sessions() as session:
            rows = await session.execute(
                select(_diagnoses)
                .where(
                    _diagnoses.c.id_card_digest == digest,
                    _diagnoses.c.disease_code == disease_code,
                    _diagnoses.c.diagnosed_at >= since,
                )
                .order_by(_diagnoses.c.diagnosed_at.desc())
            )
            return [OfflineDiagnosis.model_validate(dict(row)) for row in rows.mappings()]

    async def register_visit(
        self,
        *,
        idempotency_key: str,
        patient: PatientIdentity,
        visit_id: str,
        doctor_code: str,
        starts_at: datetime,
    ) -> HisRegistration:
        day = starts_at.astimezone(_LOCAL).date() if starts_at.tzinfo else starts_at.date()
        request = {
            "visit_id": visit_id,
            "doctor_code": doctor_code,
            "day": day.isoformat(),
            "starts_at": starts_at.isoformat(),
            "id_card_digest": id_card_digest(patient.id_card_no),
        }

        async def perform(session: AsyncSession) -> dict[str, Any]:
            # One queue per doctor and day: a transaction-scoped advisory lock serializes numbering within it, and
            # the lock is held until commit, so the next registration sees this one's number.
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:queue))"), {"queue": f"his-queue:{doctor_code}:{day}"}
            )
            last = await session.scalar(
                select(func.max(CALLS.c.response["queue_no"].astext.cast(Integer))).where(
                    CALLS.c.system == SYSTEM,
                    CALLS.c.operation == "register_visit",
                    CALLS.c.request["doctor_code"].astext == doctor_code,
                    CALLS.c.request["day"].astext == day.isoformat(),
                )
            )
            queue_no = int(last or 0) + 1
            return {"his_registration_no": f"R{day:%Y%m%d}-{doctor_code}-{queue_no:03d}", "queue_no": queue_no}

        response = await self._recorder.once(SYSTEM, "register_visit", idempotency_key, request, perform)
        return HisRegistration.model_validate(response)

    async def cancel_registration(self, *, idempotency_key: str, his_registration_no: str) -> None:
        async def perform(session: AsyncSession) -> dict[str, Any]:
            known = await session.scalar(
                select(CALLS.c.id).where(
                    CALLS.c.system == SYSTEM,
                    CALLS.c.operation == "register_visit",
                    CALLS.c.response["his_registration_no"].astext == his_registration_no,
                )
            )
            if known is None:
                raise AdapterRefusal("REGISTRATION_NOT_FOUND", "挂号记录不存在")
            # Cancelling twice (under another key) is a no-op, as at a real registration desk.
            first = await SandboxRecorder.mark_once(session, SYSTEM, "cancelled", his_registration_no)
            return {"his_registration_no": his_registration_no, "cancelled_now": first}

        request = {"his_registration_no": his_registration_no}
        await self._recorder.once(SYSTEM, "cancel_registration", idempotency_key, request, perform)

    # --- simulator hooks (tests and the demo seed) -------------------------------------------------------------------

    async def add_diagnosis(
        self,
        *,
        id_card_no: str,
        disease_code: str,
        disease_name: str,
        diagnosed_at: datetime,
        department: str = "中医内科",
        doctor_name: str = "王医生",
        encounter_id: str | None = None,
    ) -> OfflineDiagnosis:
        """Put one offline diagnosis into the HIS (idempotent on `encounter_id`)."""
        if diagnosed_at.tzinfo is None:
            diagnosed_at = diagnosed_at.replace(tzinfo=UTC)
        row = {
            "encounter_id": encounter_id or f"SBENC{uuid.uuid4().hex[:20].upper()}",
            "id_card_digest": id_card_digest(id_card_no),
            "disease_code": disease_code,
            "disease_name": disease_name,
            "diagnosed_at": diagnosed_at,
            "department": department,
            "doctor_name": doctor_name,
        }
        async with self._sessions() as session, session.begin():
            await session.execute(insert(_diagnoses).values(**row).on_conflict_do_nothing())
        return OfflineDiagnosis.model_validate(row)

    async def is_cancelled(self, his_registration_no: str) -> bool:
        async with self._sessions() as session:
            found = await session.scalar(
                select(CALLS.c.id).where(
                    CALLS.c.system == SYSTEM,
                    CALLS.c.operation == "cancelled",
                    CALLS.c.idempotency_key == his_registration_no,
                )
            )
            return found is not None

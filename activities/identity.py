"""Real-name verification: the submitted identity (encrypted on the patient row) checked through the adapter."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.adapters.realname import RealName
from activities.errors import business_error
from core.crypto.sm import FieldCipher
from models.identity import IdentityCheckInput, RealNameResult
from models.tables import Patient


class IdentityActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], cipher: FieldCipher, realname: RealName) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._realname = realname

    @activity.defn
    async def verify_identity(self, check: IdentityCheckInput) -> RealNameResult:
        async with self._sessions() as session:
            row = await session.get(Patient, check.patient_id)
        if row is None or row.identity_submission != check.submission:
            # A newer submission replaced this one; its own verification decides.
            raise business_error("SUBMISSION_SUPERSEDED", "实名信息已被更新")
        decrypt = self._cipher.decrypt
        return await self._realname.verify(
            idempotency_key=f"realname:{check.patient_id}:{check.submission}",
            name=decrypt("name", row.name_enc) or "",
            id_card_no=decrypt("id_card", row.id_card_enc) or "",
            phone=decrypt("phone", row.phone_enc) or "",
        )

    @activity.defn
    async def record_identity_result(self, check: IdentityCheckInput, result: RealNameResult) -> None:
        async with self._sessions() as session, session.begin():
            row = await session.get(Patient, check.patient_id, with_for_update=True)
            if row is None or row.identity_submission != check.submission:
                return
            row.verified_at = datetime.now(UTC) if result.matched else None
            row.verify_failure = None if result.matched else (result.reason or "实名信息不一致")

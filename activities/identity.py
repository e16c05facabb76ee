"""Real-name verification: the submitted identity (encrypted on the patient row) checked through the adapter."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.adapters.liveness import Liveness
from activities.adapters.realname import RealName
from activities.errors import business_error
from core.crypto.sm import FieldCipher, sm3_hex
from models.identity import IdentityCheckInput, LivenessResult, RealNameResult
from models.tables import LivenessCheck, Patient


class IdentityActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cipher: FieldCipher,
        realname: RealName,
        liveness: Liveness | None = None,
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._realname = realname
        self._liveness = liveness

    async def _submitted(self, check: IdentityCheckInput) -> Patient:
        async with self._sessions() as session:
            row = await session.get(Patient, check.patient_id)
        if row is None or row.identity_submission != check.submission:
            # A newer submission replaced this one; its own verification decides.
            raise business_error("SUBMISSION_SUPERSEDED", "实名信息已被更新")
        return row

    @activity.defn
    async def verify_identity(self, check: IdentityCheckInput) -> RealNameResult:
        row = await self._submitted(check)
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

    @activity.defn
    async def check_liveness(self, check: IdentityCheckInput) -> LivenessResult:
        """The live check behind the patient's token, against the submitted name and ID number (8.5.1.4)."""
        if self._liveness is None:
            # Retried until the worker is configured like the API that accepted the token (QIHUANG_ADAPTER_LIVENESS).
            raise RuntimeError("a liveness token arrived but this worker has no liveness adapter configured")
        assert check.liveness_token is not None
        row = await self._submitted(check)
        return await self._liveness.verify(
            idempotency_key=f"liveness:{check.patient_id}:{check.submission}:{_digest(check.liveness_token)[:16]}",
            name=self._cipher.decrypt("name", row.name_enc) or "",
            id_card_no=self._cipher.decrypt("id_card", row.id_card_enc) or "",
            token=check.liveness_token,
        )

    @activity.defn
    async def record_liveness(self, check: IdentityCheckInput, result: LivenessResult) -> None:
        """Keep the check's outcome, passed or not, once per live check."""
        assert check.liveness_token is not None
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(LivenessCheck)
                .values(
                    patient_id=check.patient_id,
                    submission=check.submission,
                    token_digest=_digest(check.liveness_token),
                    passed=result.passed,
                    score=result.score,
                    reason=result.reason,
                    provider_ref=result.provider_ref,
                    checked_at=datetime.now(UTC),
                )
                .on_conflict_do_nothing(constraint="liveness_check_once")
            )


def _digest(token: str) -> str:
    return sm3_hex(token.encode())

"""Revisit check steps: ask HIS for offline diagnoses; record the decision with its evidence (8.1.2.2)."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.adapters.his import His
from activities.visits import load_identity
from core.crypto.sm import FieldCipher
from models.revisit import OfflineDiagnosis, RevisitDecision, RevisitEvidenceQuery
from models.tables import RevisitEligibility


class RevisitActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], cipher: FieldCipher, his: His) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._his = his

    @activity.defn
    async def find_revisit_evidence(self, query: RevisitEvidenceQuery) -> list[OfflineDiagnosis]:
        async with self._sessions() as session:
            identity = await load_identity(session, self._cipher, query.patient_id)
        return await self._his.find_diagnoses(patient=identity, disease_code=query.disease_code, since=query.since)

    @activity.defn
    async def record_revisit_decision(self, decision: RevisitDecision) -> None:
        values = {
            "disease_name": decision.disease_name,
            "status": decision.status.value,
            "evidence": [item.model_dump(mode="json") for item in decision.evidence],
            "reason": decision.reason,
            "decided_at": decision.decided_at,
            "valid_until": decision.valid_until,
        }
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(RevisitEligibility)
                .values(patient_id=decision.patient_id, disease_code=decision.disease_code, **values)
                .on_conflict_do_update(index_elements=["patient_id", "disease_code"], set_=values)
            )

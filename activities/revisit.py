"""Revisit check steps: find the offline diagnosis in HIS and/or the EMR; record the decision with its evidence
(8.1.2.2)."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.adapters.emr import Emr
from activities.adapters.his import His, PatientIdentity
from activities.visits import load_identity
from core.crypto.sm import FieldCipher
from models.common import HOSPITAL_TZ
from models.emr import CodeKind, EmrDiagnosis
from models.revisit import OfflineDiagnosis, RevisitDecision, RevisitEvidenceQuery
from models.tables import RevisitEligibility


class RevisitActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cipher: FieldCipher,
        his: His,
        emr: Emr,
        sources: str = "his",
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._his = his
        self._emr = emr
        # "his", "emr" or "both": hospitals whose EMR is not reachable keep the HIS path.
        self._sources = sources

    @activity.defn
    async def find_revisit_evidence(self, query: RevisitEvidenceQuery) -> list[OfflineDiagnosis]:
        async with self._sessions() as session:
            identity = await load_identity(session, self._cipher, query.patient_id)
        found: list[OfflineDiagnosis] = []
        if self._sources in ("his", "both"):
            found += await self._his.find_diagnoses(
                patient=identity, disease_code=query.disease_code, since=query.since
            )
        if self._sources in ("emr", "both"):
            found += await self._from_emr(identity, query)
        # The same encounter may be known to both systems; it is one piece of evidence.
        unique = {diagnosis.encounter_id: diagnosis for diagnosis in reversed(found)}
        return sorted(unique.values(), key=lambda diagnosis: diagnosis.diagnosed_at, reverse=True)

    async def _from_emr(self, identity: PatientIdentity, query: RevisitEvidenceQuery) -> list[OfflineDiagnosis]:
        patient = await self._emr.find_patient(id_card_no=identity.id_card_no, name=identity.name)
        if patient is None:
            return []
        diagnoses = await self._emr.offline_diagnoses(
            patient_ref=patient.ref, since=query.since.astimezone(HOSPITAL_TZ).date()
        )
        return [
            _evidence(diagnosis, query.disease_code)
            for diagnosis in diagnoses
            # Our catalogue code, or the GB/T 15657 disease code when the catalogue uses national codes.
            if diagnosis.has_code(query.disease_code, CodeKind.LOCAL, CodeKind.TCM_DISEASE)
        ]

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


def _evidence(diagnosis: EmrDiagnosis, disease_code: str) -> OfflineDiagnosis:
    return OfflineDiagnosis(
        # "Encounter/<id>": the logical id is the visit number HIS knows the same encounter by.
        encounter_id=diagnosis.encounter_ref.rpartition("/")[2],
        disease_code=disease_code,
        disease_name=diagnosis.name,
        diagnosed_at=diagnosis.diagnosed_at,
        department=diagnosis.department or "",
        doctor_name=diagnosis.practitioner or "",
    )

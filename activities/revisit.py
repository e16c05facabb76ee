"""Revisit check steps (8.1.2): find the offline diagnosis in the HIS, the EMR and/or the regional health-record
platform, and in the records the patient uploaded that a doctor approved; record the decision with its evidence
(8.1.2.2); keep the reviews of uploads.

Every look-up on the regional platform is a read of the patient's health record by us: it is audited, and its
digest goes on the evidence ledger (8.1.2.4), as does each review of an upload.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.adapters.emr import Emr
from activities.adapters.his import His, PatientIdentity
from activities.adapters.regional import RegionalHealthRecords
from activities.errors import business_error
from activities.visits import load_identity
from core.crypto.sm import FieldCipher, sm3_hex
from core.ledger.service import EvidenceLedger
from models.common import HOSPITAL_TZ
from models.emr import CodeKind, EmrDiagnosis
from models.ledger import Evidence
from models.revisit import (
    EvidenceSource,
    OfflineDiagnosis,
    RevisitCheckInput,
    RevisitDecision,
    RevisitEvidenceQuery,
    UploadReview,
)
from models.signature import canonical_json
from models.tables import AuditEvent, Disease, Doctor, RevisitEligibility, RevisitUpload

REGIONAL_READ = "regional_health_record.read"


def parse_sources(sources: str) -> frozenset[EvidenceSource]:
    """`QIHUANG_REVISIT_SOURCES`: "his", "emr", "regional" or several joined by commas; "both" is "his,emr"."""
    names = ["his", "emr"] if sources == "both" else [name.strip() for name in sources.split(",")]
    return frozenset(EvidenceSource(name) for name in names)


class RevisitActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cipher: FieldCipher,
        his: His,
        emr: Emr,
        sources: str = "his",
        *,
        regional: RegionalHealthRecords,
        ledger: EvidenceLedger,
        org_code: str,
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._his = his
        self._emr = emr
        self._regional = regional
        self._ledger = ledger
        # This hospital on the regional platform: only its diagnoses count (8.1.2.1 b).
        self._org_code = org_code
        # Hospitals whose EMR or regional platform is not reachable keep the HIS path.
        self._sources = parse_sources(sources)

    @activity.defn
    async def find_revisit_evidence(self, query: RevisitEvidenceQuery) -> list[OfflineDiagnosis]:
        async with self._sessions() as session:
            identity = await load_identity(session, self._cipher, query.patient_id)
            found = await _approved_uploads(session, query)
        if EvidenceSource.HIS in self._sources:
            from_his = await self._his.find_diagnoses(
                patient=identity, disease_code=query.disease_code, since=query.since
            )
            found += [d.model_copy(update={"source": EvidenceSource.HIS}) for d in from_his]
        if EvidenceSource.EMR in self._sources:
            found += await self._from_emr(identity, query)
        if EvidenceSource.REGIONAL in self._sources:
            found += await self._from_regional(identity, query)
        # The same encounter may be known to several systems; it is one piece of evidence, as the first source
        # (uploads, then HIS, EMR, regional) has it.
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
            _evidence(diagnosis, query.disease_code, EvidenceSource.EMR)
            for diagnosis in diagnoses
            # Our catalogue code, or the GB/T 15657 disease code when the catalogue uses national codes.
            if diagnosis.has_code(query.disease_code, CodeKind.LOCAL, CodeKind.TCM_DISEASE)
        ]

    async def _from_regional(self, identity: PatientIdentity, query: RevisitEvidenceQuery) -> list[OfflineDiagnosis]:
        purpose = f"revisit-check:{query.patient_id}:{query.disease_code}"
        diagnoses = await self._regional.diagnoses(
            patient=identity, since=query.since.astimezone(HOSPITAL_TZ).date(), purpose=purpose
        )
        await self._record_regional_read(query, purpose, [d.encounter_ref for d in diagnoses])
        return [
            _evidence(diagnosis, query.disease_code, EvidenceSource.REGIONAL)
            for diagnosis in diagnoses
            if diagnosis.org_code == self._org_code
            and diagnosis.has_code(query.disease_code, CodeKind.LOCAL, CodeKind.TCM_DISEASE)
        ]

    async def _record_regional_read(self, query: RevisitEvidenceQuery, purpose: str, encounters: list[str]) -> None:
        """The audit row and the ledger entry of one look-up: whose record, why, when, and what came back."""
        read_at = datetime.now(UTC)
        detail = {"patient_id": query.patient_id, "disease_code": query.disease_code, "encounters": encounters}
        async with self._sessions() as session, session.begin():
            session.add(
                AuditEvent(
                    action=REGIONAL_READ,
                    subject_type="patient",
                    subject_id=query.patient_id,
                    reason=purpose,
                    detail=detail,
                )
            )
        digest = sm3_hex(canonical_json({**detail, "purpose": purpose, "read_at": read_at.isoformat()}))
        await self._ledger.append(
            Evidence(kind="revisit.regional_read", subject=f"patient:{query.patient_id}", digest=digest)
        )

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

    @activity.defn
    async def pending_uploads(self, check: RevisitCheckInput) -> list[str]:
        """Ids of the patient's uploads for the disease that no doctor has reviewed yet, oldest first."""
        async with self._sessions() as session:
            found = await session.scalars(
                select(col(RevisitUpload.id))
                .where(
                    col(RevisitUpload.patient_id) == check.patient_id,
                    col(RevisitUpload.disease_code) == check.disease_code,
                    col(RevisitUpload.status) == "pending",
                )
                .order_by(col(RevisitUpload.uploaded_at))
            )
            return list(found)

    @activity.defn
    async def review_upload(self, check: RevisitCheckInput, review: UploadReview) -> OfflineDiagnosis | None:
        """Store the reviewer's decision (once: a retry of the same decision finds it stored) with an audit row, and
        put it on the evidence ledger; the evidence the upload gives when approved."""
        async with self._sessions() as session, session.begin():
            row = await session.scalar(
                select(RevisitUpload)
                .where(
                    col(RevisitUpload.id) == review.upload_id,
                    col(RevisitUpload.patient_id) == check.patient_id,
                    col(RevisitUpload.disease_code) == check.disease_code,
                )
                .with_for_update()
            )
            if row is None:
                raise business_error("UPLOAD_NOT_FOUND", "上传资料不存在")
            decided = "approved" if review.approve else "rejected"
            if row.status == "pending":
                reviewer_user = await session.scalar(
                    select(col(Doctor.user_id)).where(col(Doctor.id) == review.reviewer_id)
                )
                row.status, row.reviewed_by = decided, review.reviewer_id
                row.review_reason, row.reviewed_at = review.reason or None, datetime.now(UTC)
                session.add(
                    AuditEvent(
                        actor_user_id=reviewer_user,
                        action="revisit_upload.review",
                        subject_type="revisit_upload",
                        subject_id=row.id,
                        reason=review.reason or None,
                        detail={"patient_id": row.patient_id, "disease_code": row.disease_code, "decision": decided},
                    )
                )
            elif (row.status, row.reviewed_by) != (decided, review.reviewer_id):
                raise business_error("UPLOAD_ALREADY_REVIEWED", "该资料已由其他医生审核")
            disease_name = await session.scalar(select(col(Disease.name)).where(col(Disease.code) == row.disease_code))
            reviewed = {
                "upload_id": row.id,
                "sm3": row.sm3,
                "decision": decided,
                "reviewer_id": row.reviewed_by,
                "reason": row.review_reason,
                "reviewed_at": row.reviewed_at.isoformat() if row.reviewed_at else None,
            }
            evidence = _upload_evidence(row, disease_name or "") if review.approve else None
        await self._ledger.append(
            Evidence(
                kind="revisit.upload_reviewed",
                subject=f"revisit_upload:{row.id}",
                digest=sm3_hex(canonical_json(reviewed)),
            )
        )
        return evidence


async def _approved_uploads(session: AsyncSession, query: RevisitEvidenceQuery) -> list[OfflineDiagnosis]:
    """Uploads of the patient for the disease a doctor approved, of offline visits within the window."""
    rows = await session.execute(
        select(RevisitUpload, col(Disease.name))
        .join(Disease, col(Disease.code) == col(RevisitUpload.disease_code))
        .where(
            col(RevisitUpload.patient_id) == query.patient_id,
            col(RevisitUpload.disease_code) == query.disease_code,
            col(RevisitUpload.status) == "approved",
            col(RevisitUpload.visited_on) >= query.since.astimezone(HOSPITAL_TZ).date(),
        )
    )
    return [_upload_evidence(upload, name) for upload, name in rows.all()]


def _upload_evidence(upload: RevisitUpload, disease_name: str) -> OfflineDiagnosis:
    return OfflineDiagnosis(
        encounter_id=f"upload:{upload.id}",
        disease_code=upload.disease_code,
        disease_name=disease_name,
        diagnosed_at=_hospital_day(upload.visited_on),
        department="",
        doctor_name="",
        source=EvidenceSource.UPLOAD,
    )


def _hospital_day(day: date) -> datetime:
    return datetime.combine(day, time(0), HOSPITAL_TZ)


def _evidence(diagnosis: EmrDiagnosis, disease_code: str, source: EvidenceSource) -> OfflineDiagnosis:
    return OfflineDiagnosis(
        # "Encounter/<id>": the logical id is the visit number HIS knows the same encounter by.
        encounter_id=diagnosis.encounter_ref.rpartition("/")[2],
        disease_code=disease_code,
        disease_name=diagnosis.name,
        diagnosed_at=diagnosis.diagnosed_at,
        department=diagnosis.department or "",
        doctor_name=diagnosis.practitioner or "",
        source=source,
    )

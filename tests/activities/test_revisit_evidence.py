"""Where the revisit check finds the offline diagnosis: HIS, the EMR, the regional health-record platform, uploads a
doctor approved, with one piece of evidence per encounter; and the reviews of uploads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlmodel import col
from temporalio.exceptions import ApplicationError

from activities.adapters.emr.sandbox import SandboxEmr
from activities.adapters.his import PatientIdentity
from activities.adapters.regional.sandbox import SandboxRegional
from activities.revisit import REGIONAL_READ, RevisitActivities, parse_sources
from api.identity import identity_columns
from core.crypto.sm import FieldCipher
from core.ledger.service import EvidenceLedger
from models.common import Role
from models.revisit import EvidenceSource, OfflineDiagnosis, RevisitCheckInput, RevisitEvidenceQuery, UploadReview
from models.tables import AuditEvent, LedgerEntry, Patient, RevisitUpload
from tests.api.helpers import make_department, make_disease, make_user, unique
from workers.seed import DEMO_IDENTITIES

ZHANG = DEMO_IDENTITIES["demo-patient"]
DISEASE = "TCM-PW-001"  # 胃痞病: what the sandbox EMR's demo encounter of 张三 diagnosed


class ListedHis:
    """A HIS that knows the given diagnoses of everyone."""

    def __init__(self, *diagnoses: OfflineDiagnosis) -> None:
        self.diagnoses = list(diagnoses)
        self.asked: list[PatientIdentity] = []

    async def find_diagnoses(self, *, patient: PatientIdentity, disease_code: str, since: datetime):
        self.asked.append(patient)
        return [d for d in self.diagnoses if d.disease_code == disease_code and d.diagnosed_at >= since]


def his_diagnosis(encounter_id: str, days_ago: int) -> OfflineDiagnosis:
    return OfflineDiagnosis(
        encounter_id=encounter_id,
        disease_code=DISEASE,
        disease_name="胃痞病",
        diagnosed_at=datetime.now(UTC) - timedelta(days=days_ago),
        department="脾胃病科",
        doctor_name="王医生",
    )


@pytest.fixture
async def patient_id(sessions, settings) -> str:
    _, patient_id = await make_user(sessions, Role.PATIENT)
    assert patient_id is not None
    cipher = FieldCipher(settings.pii_key, settings.blind_index_key)
    columns = identity_columns(
        cipher, name=ZHANG["name"], id_card=ZHANG["id_card_no"], phone=ZHANG["phone"], address=None
    )
    async with sessions() as session, session.begin():
        await session.execute(update(Patient).where(col(Patient.id) == patient_id).values(**columns))
    return patient_id


def activities(sessions, settings, his: ListedHis, sources: str) -> RevisitActivities:
    cipher = FieldCipher(settings.pii_key, settings.blind_index_key)
    return RevisitActivities(
        sessions,
        cipher,
        his,  # type: ignore[arg-type]
        SandboxEmr(sessions, settings),
        sources,
        regional=SandboxRegional(sessions, settings),
        ledger=EvidenceLedger(sessions),
        org_code=settings.hospital_org_code,
    )


def query(patient_id: str, window_days: int = 180) -> RevisitEvidenceQuery:
    return RevisitEvidenceQuery(
        patient_id=patient_id, disease_code=DISEASE, since=datetime.now(UTC) - timedelta(days=window_days)
    )


async def test_the_emr_alone_supplies_the_evidence(sessions, settings, patient_id) -> None:
    his = ListedHis(his_diagnosis("his-only", 3))
    found = await activities(sessions, settings, his, "emr").find_revisit_evidence(query(patient_id))
    assert [(d.encounter_id, d.disease_code, d.disease_name) for d in found] == [("his-enc-demo-1", DISEASE, "胃痞病")]
    assert his.asked == []
    # Outside the window the EMR's encounter does not count.
    assert await activities(sessions, settings, his, "emr").find_revisit_evidence(query(patient_id, 7)) == []


async def test_both_sources_merge_and_an_encounter_known_to_both_counts_once(sessions, settings, patient_id) -> None:
    his = ListedHis(his_diagnosis("his-enc-demo-1", 30), his_diagnosis("his-later", 3))
    found = await activities(sessions, settings, his, "both").find_revisit_evidence(query(patient_id))
    assert [d.encounter_id for d in found] == ["his-later", "his-enc-demo-1"]  # newest first
    assert his.asked == [PatientIdentity(name=ZHANG["name"], id_card_no=ZHANG["id_card_no"])]


async def test_the_emr_finds_nobody_when_the_name_does_not_match(sessions, settings, patient_id) -> None:
    async with sessions() as session, session.begin():
        cipher = FieldCipher(settings.pii_key, settings.blind_index_key)
        await session.execute(
            update(Patient).where(col(Patient.id) == patient_id).values(name_enc=cipher.encrypt("name", "张三丰"))
        )
    assert await activities(sessions, settings, ListedHis(), "emr").find_revisit_evidence(query(patient_id)) == []


async def test_the_regional_platform_counts_only_this_hospitals_diagnoses_and_each_look_up_is_on_record(
    sessions, settings, patient_id
) -> None:
    found = await activities(sessions, settings, ListedHis(), "regional").find_revisit_evidence(query(patient_id))
    # The community health centre's visit for the same complaint is not a visit of this hospital.
    assert [(d.encounter_id, d.source) for d in found] == [("his-enc-demo-1", EvidenceSource.REGIONAL)]
    async with sessions() as session:
        audited = (
            (
                await session.execute(
                    select(AuditEvent).where(
                        col(AuditEvent.action) == REGIONAL_READ, col(AuditEvent.subject_id) == patient_id
                    )
                )
            )
            .scalars()
            .all()
        )
        ledgered = await session.scalar(
            select(func.count()).where(
                col(LedgerEntry.kind) == "revisit.regional_read", col(LedgerEntry.subject) == f"patient:{patient_id}"
            )
        )
    [event] = audited
    assert event.reason == f"revisit-check:{patient_id}:{DISEASE}"
    assert set(event.detail["encounters"]) == {"his-enc-demo-1", "his-enc-demo-1-community"}
    assert ledgered == 1


def test_sources_are_named_one_by_one_or_as_both() -> None:
    assert parse_sources("both") == {EvidenceSource.HIS, EvidenceSource.EMR}
    assert parse_sources("his,regional") == {EvidenceSource.HIS, EvidenceSource.REGIONAL}


async def _upload(sessions, patient_id: str, disease_code: str, visited_on: date) -> str:  # type: ignore[no-untyped-def]
    upload_id = unique("upl")
    async with sessions() as session, session.begin():
        session.add(
            RevisitUpload(
                id=upload_id,
                patient_id=patient_id,
                disease_code=disease_code,
                kind="pdf",
                content_type="application/pdf",
                size_bytes=10,
                sm3="0" * 64,
                data_enc=b"sealed",
                visited_on=visited_on,
            )
        )
    return upload_id


async def test_a_reviewed_upload_is_stored_audited_on_the_ledger_and_then_evidence(
    sessions, settings, patient_id
) -> None:
    department = await make_department(sessions)
    disease = await make_disease(sessions, department, "胃痞病")
    steps = activities(sessions, settings, ListedHis(), "his")
    recent = date.today() - timedelta(days=20)
    approved = await _upload(sessions, patient_id, disease, recent)
    rejected = await _upload(sessions, patient_id, disease, recent)
    check = RevisitCheckInput(patient_id=patient_id, disease_code=disease, window_days=180, valid_days=90)
    assert await steps.pending_uploads(check) == [approved, rejected]
    _, reviewer = await make_user(sessions, Role.DOCTOR, department_id=department)
    assert reviewer is not None

    evidence = await steps.review_upload(check, UploadReview(upload_id=approved, reviewer_id=reviewer, approve=True))
    assert evidence is not None
    assert (evidence.encounter_id, evidence.source) == (f"upload:{approved}", EvidenceSource.UPLOAD)
    assert evidence.diagnosed_at.date() == recent and evidence.disease_name == "胃痞病"
    no = UploadReview(upload_id=rejected, reviewer_id=reviewer, approve=False, reason="非本院病历")
    assert await steps.review_upload(check, no) is None
    assert await steps.review_upload(check, no) is None  # a retry of the same decision is fine
    with pytest.raises(ApplicationError) as changed:
        await steps.review_upload(check, no.model_copy(update={"approve": True}))
    assert changed.value.type == "UPLOAD_ALREADY_REVIEWED"
    assert await steps.pending_uploads(check) == []

    async with sessions() as session:
        row = await session.get(RevisitUpload, rejected)
        assert row is not None
        assert (row.status, row.review_reason, row.reviewed_by) == ("rejected", "非本院病历", reviewer)
        reviews = await session.scalar(
            select(func.count()).where(
                col(AuditEvent.action) == "revisit_upload.review", col(AuditEvent.subject_id).in_([approved, rejected])
            )
        )
        ledgered = await session.scalar(
            select(func.count()).where(
                col(LedgerEntry.kind) == "revisit.upload_reviewed",
                col(LedgerEntry.subject).in_([f"revisit_upload:{approved}", f"revisit_upload:{rejected}"]),
            )
        )
    assert (reviews, ledgered) == (2, 2)
    # The approved upload is evidence for every later check of the disease, within the window only.
    since = datetime.now(UTC)
    found = await steps.find_revisit_evidence(
        RevisitEvidenceQuery(patient_id=patient_id, disease_code=disease, since=since - timedelta(days=180))
    )
    assert [d.encounter_id for d in found] == [f"upload:{approved}"]
    later_window = RevisitEvidenceQuery(patient_id=patient_id, disease_code=disease, since=since - timedelta(days=7))
    assert await steps.find_revisit_evidence(later_window) == []

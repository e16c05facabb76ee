"""Where the revisit check finds the offline diagnosis: HIS, the EMR, or both with one piece of evidence per
encounter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col

from activities.adapters.emr.sandbox import SandboxEmr
from activities.adapters.his import PatientIdentity
from activities.revisit import RevisitActivities
from api.identity import identity_columns
from core.crypto.sm import FieldCipher
from models.common import Role
from models.revisit import OfflineDiagnosis, RevisitEvidenceQuery
from models.tables import Patient
from tests.api.helpers import make_user
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
    return RevisitActivities(sessions, cipher, his, SandboxEmr(sessions, settings), sources)  # type: ignore[arg-type]


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

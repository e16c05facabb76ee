from __future__ import annotations

from datetime import date, timedelta

import pytest

from activities.adapters.emr.sandbox import DEMO_AGE
from activities.adapters.his import PatientIdentity
from activities.adapters.regional.contract import RegionalContract
from activities.adapters.regional.sandbox import COMMUNITY_CENTRE, SandboxRegional
from models.emr import CodeKind
from workers.seed import DEMO_HIS_DIAGNOSES, DEMO_IDENTITIES


@pytest.fixture
def adapter(sessions, settings) -> SandboxRegional:  # type: ignore[no-untyped-def]
    return SandboxRegional(sessions, settings)


@pytest.fixture
def simulator(adapter: SandboxRegional) -> SandboxRegional:
    return adapter


class TestSandboxRegional(RegionalContract):
    pass


async def test_a_demo_patient_has_this_hospitals_visit_and_a_community_one(adapter, settings) -> None:  # type: ignore[no-untyped-def]
    zhang = DEMO_IDENTITIES["demo-patient"]
    encounter, disease, _ = DEMO_HIS_DIAGNOSES["demo-patient"]
    found = await adapter.diagnoses(
        patient=PatientIdentity(name=zhang["name"], id_card_no=zhang["id_card_no"]),
        since=date.today() - DEMO_AGE - timedelta(days=1),
        purpose="test",
    )
    here = [d for d in found if d.org_code == settings.hospital_org_code]
    assert [d.encounter_ref for d in here] == [encounter] and here[0].has_code(disease, CodeKind.LOCAL)
    assert {d.org_code for d in found} == {settings.hospital_org_code, COMMUNITY_CENTRE[0]}

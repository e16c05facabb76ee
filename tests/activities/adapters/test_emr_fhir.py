from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from fhir.resources.R4B.bundle import Bundle, BundleLink
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.emr import ICD10_SYSTEM, TCM_DISEASE_SYSTEM, TCM_SYNDROME_SYSTEM
from activities.adapters.emr.contract import EmrContract
from activities.adapters.emr.fhir import FhirEmr
from activities.adapters.emr.sandbox import SandboxEmr
from activities.adapters.errors import AdapterError, AdapterRefusal
from core.settings import Settings
from models import idcard
from models.common import HOSPITAL_TZ
from models.emr import CodeKind, DiagnosisCode, EncounterSetting
from tests.simulators.fhir_peer import HOSPITAL_ID, HOSPITAL_SYSTEM, OTHER_HOSPITAL_ID, EmrTestData, FhirPeer, outcome
from workers.seed import DEMO_HIS_DIAGNOSES, DEMO_IDENTITIES, DEPARTMENTS, DOCTORS

# Neither adapter touches the database; an unbound session factory fills the constructor's slot.
NO_DB: async_sessionmaker[AsyncSession] = async_sessionmaker()
TODAY = datetime.now(HOSPITAL_TZ).date()
SINCE = TODAY - timedelta(days=180)

DISEASE = DiagnosisCode(kind=CodeKind.TCM_DISEASE, system=TCM_DISEASE_SYSTEM, code="A04.03.01", display="胃痞病")
SYNDROME = DiagnosisCode(kind=CodeKind.TCM_SYNDROME, system=TCM_SYNDROME_SYSTEM, code="B04.02.03", display="肝胃不和证")
ICD = DiagnosisCode(kind=CodeKind.ICD10, system=ICD10_SYSTEM, code="K30", display="功能性消化不良")


@pytest_asyncio.fixture(scope="module")
async def running_peer() -> AsyncIterator[FhirPeer]:
    peer = FhirPeer()
    await peer.start()
    yield peer
    await peer.stop()


@pytest.fixture
def peer(running_peer: FhirPeer) -> Iterator[FhirPeer]:
    running_peer.reset()
    yield running_peer
    running_peer.reset()


@pytest.fixture
def data(peer: FhirPeer) -> EmrTestData:
    return EmrTestData(peer)


@pytest.fixture
def emr(data: EmrTestData, settings: Settings) -> FhirEmr:
    return FhirEmr(NO_DB, settings, data.config(bearer_token="t0k"))


class TestFhirEmr(EmrContract):
    @pytest.fixture
    def adapter(self, emr: FhirEmr) -> FhirEmr:
        return emr

    @pytest.fixture
    def simulator(self, data: EmrTestData) -> EmrTestData:
        return data


class TestSandboxEmr(EmrContract):
    @pytest.fixture
    def adapter(self, settings: Settings) -> SandboxEmr:
        return SandboxEmr(NO_DB, settings)

    @pytest.fixture
    def simulator(self, adapter: SandboxEmr) -> SandboxEmr:
        return adapter


async def patient_ref(data: EmrTestData, name: str = "张仲景") -> str:
    return await data.add_patient(id_card_no=idcard.random_valid(), name=name)


# --- sandbox ---------------------------------------------------------------------------------------------------------


async def test_sandbox_demo_patients_match_the_seed(settings: Settings) -> None:
    emr = SandboxEmr(NO_DB, settings)
    doctors = {doctor.id: doctor for doctor in DOCTORS}
    departments = {department.id: department for department in DEPARTMENTS}
    for username, identity in DEMO_IDENTITIES.items():
        found = await emr.find_patient(id_card_no=identity["id_card_no"], name=identity["name"])
        assert found is not None
        encounter_id, disease_code, doctor_id = DEMO_HIS_DIAGNOSES[username]
        department = departments[doctors[doctor_id].department_id]
        [diagnosis] = await emr.offline_diagnoses(patient_ref=found.ref, since=SINCE)
        assert diagnosis.encounter_ref == f"Encounter/{encounter_id}"
        assert diagnosis.has_code(disease_code, CodeKind.LOCAL)
        assert diagnosis.name == dict(department.diseases)[disease_code]
        assert (diagnosis.department, diagnosis.practitioner) == (department.name, doctors[doctor_id].name)
        [document] = await emr.documents(patient_ref=found.ref, since=SINCE)
        assert document.encounter_refs == [diagnosis.encounter_ref]


# --- FHIR: queries, paging, includes ---------------------------------------------------------------------------------


async def test_requests_carry_the_token_and_search_by_id_card_system(emr: FhirEmr, data: EmrTestData) -> None:
    number = idcard.random_valid()
    await data.add_patient(id_card_no=number, name="华佗")
    assert await emr.find_patient(id_card_no=number, name="华佗") is not None
    [search] = data.peer.searches("Patient")
    assert search.authorization == "Bearer t0k"
    assert ("identifier", f"urn:oid:2.16.156.10011.1.3|{number}") in search.query


async def test_diagnoses_are_paged_across_three_pages(data: EmrTestData, settings: Settings) -> None:
    emr = FhirEmr(NO_DB, settings, data.config(page_size=2, bearer_token="t0k"))
    ref = await patient_ref(data)
    doctor = data.practitioner("李明远")
    for days in range(1, 6):
        data.encounter(
            ref, TODAY - timedelta(days=days), [data.condition(ref, "胃痞病", [DISEASE])], practitioner=doctor
        )
    found = await emr.offline_diagnoses(patient_ref=ref, since=SINCE)
    assert [d.diagnosed_at.astimezone(HOSPITAL_TZ).date() for d in found] == [
        TODAY - timedelta(days=days) for days in range(1, 6)
    ]
    pages = data.peer.searches("Encounter")
    assert len(pages) == 3
    assert [dict(page.query).get("_offset") for page in pages] == [None, "2", "4"]
    assert all(page.authorization == "Bearer t0k" for page in pages)


async def test_include_brings_diagnoses_and_doctors_in_one_search(emr: FhirEmr, data: EmrTestData) -> None:
    ref = await patient_ref(data)
    conditions = [data.condition(ref, "胃痞病", [DISEASE, ICD]), data.condition(ref, "肝胃不和证", [SYNDROME])]
    encounter = data.encounter(ref, TODAY - timedelta(days=3), conditions, practitioner=data.practitioner("李明远"))
    found = await emr.offline_diagnoses(patient_ref=ref, since=SINCE)
    assert sorted(d.name for d in found) == ["肝胃不和证", "胃痞病"]
    assert {d.encounter_ref for d in found} == {f"Encounter/{encounter.id}"}
    assert all(d.practitioner == "李明远" for d in found)
    [disease] = [d for d in found if d.has_code(DISEASE.code, CodeKind.TCM_DISEASE)]
    assert disease.has_code("K30", CodeKind.ICD10)
    assert [d.name for d in found if d.has_code(SYNDROME.code, CodeKind.TCM_SYNDROME)] == ["肝胃不和证"]
    assert data.peer.searches("Condition") == []


async def test_without_include_diagnoses_are_searched_by_encounter(emr: FhirEmr, data: EmrTestData) -> None:
    data.peer.honour_include = False
    ref = await patient_ref(data)
    encounter = data.encounter(ref, TODAY - timedelta(days=3), [data.condition(ref, "胃痞病", [DISEASE])])
    [found] = await emr.offline_diagnoses(patient_ref=ref, since=SINCE)
    assert (found.encounter_ref, found.name) == (f"Encounter/{encounter.id}", "胃痞病")
    [search] = data.peer.searches("Condition")
    assert ("encounter", f"Encounter/{encounter.id}") in search.query


async def test_conditions_linked_only_from_their_side_are_found(emr: FhirEmr, data: EmrTestData) -> None:
    ref = await patient_ref(data)
    data.encounter(ref, TODAY - timedelta(days=3), [data.condition(ref, "胃痞病", [DISEASE])], list_diagnoses=False)
    assert [d.name for d in await emr.offline_diagnoses(patient_ref=ref, since=SINCE)] == ["胃痞病"]


async def test_a_referenced_condition_found_nowhere_else_is_read(emr: FhirEmr, data: EmrTestData) -> None:
    data.peer.honour_include = False
    ref = await patient_ref(data)
    condition = data.condition(ref, "胃痞病", [DISEASE])
    data.encounter(ref, TODAY - timedelta(days=3), [condition])
    condition.encounter = None  # linked from the encounter only, so the search by encounter misses it
    assert [d.condition_ref for d in await emr.offline_diagnoses(patient_ref=ref, since=SINCE)] == [
        f"Condition/{condition.id}"
    ]
    assert any(r.path.endswith(f"/Condition/{condition.id}") for r in data.peer.requests)


async def test_refuted_diagnoses_are_ignored(emr: FhirEmr, data: EmrTestData) -> None:
    ref = await patient_ref(data)
    data.encounter(ref, TODAY - timedelta(days=3), [data.condition(ref, "胃痞病", [DISEASE], verification="refuted")])
    assert await emr.offline_diagnoses(patient_ref=ref, since=SINCE) == []


async def test_inpatient_stays_count_from_discharge_and_virtual_visits_not_at_all(
    emr: FhirEmr, data: EmrTestData
) -> None:
    ref = await patient_ref(data)
    admitted = TODAY - timedelta(days=200)
    data.encounter(ref, admitted, [data.condition(ref, "胃痞病", [DISEASE])], encounter_class="IMP", days=25)
    data.encounter(ref, TODAY - timedelta(days=2), [data.condition(ref, "胃痞病", [DISEASE])], encounter_class="VR")
    [stay] = await emr.offline_diagnoses(patient_ref=ref, since=SINCE)
    assert stay.setting is EncounterSetting.INPATIENT
    assert stay.diagnosed_at.astimezone(HOSPITAL_TZ).date() == admitted + timedelta(days=25)


async def test_departments_and_identifier_references_count_as_this_hospital(emr: FhirEmr, data: EmrTestData) -> None:
    ref = await patient_ref(data)
    on = TODAY - timedelta(days=3)
    by_department = data.encounter(
        ref,
        on,
        [data.condition(ref, "胃痞病", [DISEASE])],
        department=None,
        provider=Reference(reference="Organization/dept-pw"),
    )
    by_identifier = data.encounter(
        ref,
        on,
        [data.condition(ref, "胃痞病", [DISEASE])],
        provider=Reference(identifier=Identifier(system=HOSPITAL_SYSTEM, value=HOSPITAL_ID)),
    )
    data.encounter(
        ref,
        on,
        [data.condition(ref, "胃痞病", [DISEASE])],
        provider=Reference(identifier=Identifier(system=HOSPITAL_SYSTEM, value=OTHER_HOSPITAL_ID)),
    )
    data.encounter(
        ref, on, [data.condition(ref, "胃痞病", [DISEASE])], provider=Reference(reference="Organization/unknown")
    )
    found = {d.encounter_ref: d for d in await emr.offline_diagnoses(patient_ref=ref, since=SINCE)}
    assert set(found) == {f"Encounter/{by_department.id}", f"Encounter/{by_identifier.id}"}
    assert found[f"Encounter/{by_department.id}"].department == "脾胃病科"


async def test_two_matching_records_are_refused_and_inactive_ones_ignored(emr: FhirEmr, data: EmrTestData) -> None:
    number = idcard.random_valid()
    data.patient(id_card_no=number, name="葛洪", active=False)
    live = data.patient(id_card_no=number, name="葛洪")
    found = await emr.find_patient(id_card_no=number, name="葛洪")
    assert found is not None and found.ref == f"Patient/{live.id}"
    assert found.birth_date == idcard.birth_date(number)
    data.patient(id_card_no=number, name="葛洪")
    with pytest.raises(AdapterRefusal) as refused:
        await emr.find_patient(id_card_no=number, name="葛洪")
    assert refused.value.code == "EMR_PATIENT_AMBIGUOUS"


async def test_documents_keep_their_encounters_and_skip_superseded_ones(emr: FhirEmr, data: EmrTestData) -> None:
    ref = await patient_ref(data)
    encounter = data.encounter(ref, TODAY - timedelta(days=3), [])
    current = data.document(ref, TODAY - timedelta(days=3), title="门诊病历", encounter=encounter)
    data.document(ref, TODAY - timedelta(days=3), title="门诊病历（旧）", status="superseded")
    [found] = await emr.documents(patient_ref=ref, since=SINCE)
    assert (found.ref, found.encounter_refs) == (f"DocumentReference/{current.id}", [f"Encounter/{encounter.id}"])


# --- FHIR: failures --------------------------------------------------------------------------------------------------


def encounter_bundle(**fields: object) -> bytes:
    return json.dumps({"resourceType": "Bundle", "type": "searchset", **fields}).encode()


async def test_malformed_answers_are_adapter_errors(emr: FhirEmr, data: EmrTestData) -> None:
    ref = await patient_ref(data)
    no_class = {"resource": {"resourceType": "Encounter", "id": "e1", "status": "finished"}}
    for body, content_type in [
        (encounter_bundle(entry=[no_class]), "application/fhir+json"),
        (b"<html>gateway</html>", "text/html"),
        (b'{"resourceType": "Patient", "id": "p1"}', "application/fhir+json"),
        (json.dumps({"resourceType": "Bundle", "type": "collection"}).encode(), "application/fhir+json"),
    ]:
        # The first search (the hospital's Organization) gets the bad answer.
        data.peer.answer_next(body, content_type=content_type)
        with pytest.raises(AdapterError) as failed:
            await emr.offline_diagnoses(patient_ref=ref, since=SINCE)
        assert "search Organization" in str(failed.value)
    assert await emr.offline_diagnoses(patient_ref=ref, since=SINCE) == []


async def test_malformed_encounter_page_names_the_problem(emr: FhirEmr, data: EmrTestData) -> None:
    ref = await patient_ref(data)
    hospital = Bundle(type="searchset").model_dump_json().encode()
    data.peer.answer_next(hospital)  # the hospital search: nothing, so no departments search follows
    data.peer.answer_next(encounter_bundle(entry=[{"resource": {"resourceType": "Encounter", "id": "e1"}}]))
    with pytest.raises(AdapterError, match=r"malformed Bundle \(entry\.0\.resource\.class"):
        await emr.offline_diagnoses(patient_ref=ref, since=SINCE)


async def test_server_errors_and_slow_answers_are_adapter_errors(data: EmrTestData, settings: Settings) -> None:
    emr = FhirEmr(NO_DB, settings, data.config(timeout_s=1.0))
    number = idcard.random_valid()
    await data.add_patient(id_card_no=number, name="扁鹊")
    for status in (500, 503, 429):
        data.peer.fail_next(status=status)
        with pytest.raises(AdapterError, match=f"HTTP {status}"):
            await emr.find_patient(id_card_no=number, name="扁鹊")
    data.peer.delay_next(seconds=2.0)
    with pytest.raises(AdapterError, match="no answer within"):
        await emr.find_patient(id_card_no=number, name="扁鹊")
    assert await emr.find_patient(id_card_no=number, name="扁鹊") is not None  # the peer is well again


async def test_operation_outcomes_map_to_refusals_or_errors(emr: FhirEmr, data: EmrTestData) -> None:
    number = idcard.random_valid()
    echoed = outcome("processing", f"identifier {number} is malformed").model_dump_json().encode()
    data.peer.answer_next(echoed, status=400)
    with pytest.raises(AdapterRefusal) as refused:
        await emr.find_patient(id_card_no=number, name="扁鹊")
    assert refused.value.code == "EMR_QUERY_REJECTED"
    assert number not in str(refused.value)  # diagnostics echo the query; they stay out of our errors
    data.peer.answer_next(outcome("security", "who are you").model_dump_json().encode(), status=401)
    with pytest.raises(AdapterRefusal) as denied:
        await emr.find_patient(id_card_no=number, name="扁鹊")
    assert denied.value.code == "EMR_ACCESS_DENIED"
    data.peer.answer_next(outcome("transient", "busy").model_dump_json().encode(), status=200)
    with pytest.raises(AdapterError, match="transient"):
        await emr.find_patient(id_card_no=number, name="扁鹊")


async def test_next_links_must_stay_on_the_emr(emr: FhirEmr, data: EmrTestData) -> None:
    away = Bundle(type="searchset", link=[BundleLink(relation="next", url="http://elsewhere.example/fhir/Patient?p=2")])
    data.peer.answer_next(away.model_dump_json().encode())
    with pytest.raises(AdapterError, match="leaves the EMR's origin"):
        await emr.find_patient(id_card_no=idcard.random_valid(), name="扁鹊")
    assert len(data.peer.requests) == 1


async def test_the_emr_needs_its_configuration(settings: Settings) -> None:
    with pytest.raises(ValueError, match="QIHUANG_EMR_FHIR"):
        FhirEmr(NO_DB, settings)


# --- the peer itself -------------------------------------------------------------------------------------------------


async def test_peer_refuses_unknown_parameters_with_an_operation_outcome(peer: FhirPeer) -> None:
    async with httpx.AsyncClient(base_url=peer.base_url) as client:
        answer = await client.get("/Encounter", params={"subject:Patient.name": "x"})
        read = await client.get("/Condition/nope")
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/fhir+json")
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert read.status_code == 404

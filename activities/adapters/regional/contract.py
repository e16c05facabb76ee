"""Contract every `RegionalHealthRecords` implementation must pass.

    class TestMyRegional(RegionalContract):
        @pytest.fixture
        def adapter(self): return MyRegional(...)
        @pytest.fixture
        def simulator(self): return MyRegionalTestData(...)   # see `RegionalSimulator`

Each test uses a fresh person, so the suite can run against a shared test platform.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Protocol

from activities.adapters.emr import ICD10_SYSTEM, TCM_DISEASE_SYSTEM
from activities.adapters.his import PatientIdentity
from activities.adapters.regional import RegionalDiagnosis, RegionalHealthRecords
from models import idcard
from models.emr import CodeKind, DiagnosisCode

PURPOSE = "contract-test"


class RegionalSimulator(Protocol):
    """Files records on the platform's test environment."""

    async def add_diagnosis(
        self,
        *,
        id_card_no: str,
        name: str,
        on: date,
        diagnosis_name: str,
        codes: Sequence[DiagnosisCode],
        here: bool = True,
        encounter_id: str | None = None,
        department: str = ...,
        practitioner: str = ...,
    ) -> RegionalDiagnosis:
        """A finished ambulatory encounter on hospital day `on`, filed by the hospital under test unless not
        `here`, when another institution of the region filed it."""
        ...


_WEIPI = [
    DiagnosisCode(kind=CodeKind.TCM_DISEASE, system=TCM_DISEASE_SYSTEM, code="A04.03.07", display="胃痞病"),
    DiagnosisCode(kind=CodeKind.ICD10, system=ICD10_SYSTEM, code="K30", display="功能性消化不良"),
]


def _person() -> PatientIdentity:
    return PatientIdentity(name="李时珍", id_card_no=idcard.random_valid())


class RegionalContract:
    def test_implements_protocol(self, adapter: RegionalHealthRecords) -> None:
        assert isinstance(adapter, RegionalHealthRecords)

    async def test_diagnoses_of_the_person_since_the_day_newest_first(
        self, adapter: RegionalHealthRecords, simulator: RegionalSimulator
    ) -> None:
        person, today = _person(), date.today()
        old = await simulator.add_diagnosis(
            id_card_no=person.id_card_no, name=person.name, on=today - timedelta(days=400), diagnosis_name="胃痞病",
            codes=_WEIPI,
        )  # fmt: skip
        recent = await simulator.add_diagnosis(
            id_card_no=person.id_card_no, name=person.name, on=today - timedelta(days=30), diagnosis_name="胃痞病",
            codes=_WEIPI,
        )  # fmt: skip
        elsewhere = await simulator.add_diagnosis(
            id_card_no=person.id_card_no, name=person.name, on=today - timedelta(days=10), diagnosis_name="胃痞病",
            codes=_WEIPI, here=False,
        )  # fmt: skip
        found = await adapter.diagnoses(patient=person, since=today - timedelta(days=180), purpose=PURPOSE)
        assert [d.encounter_ref for d in found] == [elsewhere.encounter_ref, recent.encounter_ref]
        assert old.encounter_ref not in {d.encounter_ref for d in found}
        # Another institution's record carries its own code, so callers can keep their own hospital's.
        assert found[0].org_code != found[1].org_code
        assert found[1].has_code("A04.03.07", CodeKind.TCM_DISEASE)

    async def test_name_and_number_must_both_match(
        self, adapter: RegionalHealthRecords, simulator: RegionalSimulator
    ) -> None:
        person, today = _person(), date.today()
        await simulator.add_diagnosis(
            id_card_no=person.id_card_no, name=person.name, on=today, diagnosis_name="胃痞病", codes=_WEIPI
        )
        since = today - timedelta(days=1)
        wrong_name = PatientIdentity(name="李时", id_card_no=person.id_card_no)
        assert await adapter.diagnoses(patient=wrong_name, since=since, purpose=PURPOSE) == []
        assert await adapter.diagnoses(patient=_person(), since=since, purpose=PURPOSE) == []
        assert len(await adapter.diagnoses(patient=person, since=since, purpose=PURPOSE)) == 1

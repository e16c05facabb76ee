"""Contract every `Emr` implementation must pass.

Use it from your own test module (pytest with pytest-asyncio, `asyncio_mode = "auto"`):

    class TestMyEmr(EmrContract):
        @pytest.fixture
        def adapter(self): return MyEmr(...)
        @pytest.fixture
        def simulator(self): return MyEmrTestData(...)   # see `EmrSimulator`

Each test uses a fresh patient, so the suite can run against a shared test EMR. The simulator files codes under
the systems of `activities.adapters.emr`; an adapter configured for other URIs needs a simulator that uses those.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Protocol

from activities.adapters.emr import ICD10_SYSTEM, TCM_DISEASE_SYSTEM, TCM_SYNDROME_SYSTEM, Emr
from models import idcard
from models.common import HOSPITAL_TZ
from models.emr import CodeKind, DiagnosisCode, EncounterSetting


class EmrSimulator(Protocol):
    """Puts records into the EMR's test environment."""

    async def add_patient(self, *, id_card_no: str, name: str) -> str:
        """Register a person; return the record's reference (what `find_patient` returns as `ref`)."""
        ...

    async def add_encounter(
        self,
        *,
        patient_ref: str,
        on: date,
        diagnosis_name: str,
        codes: Sequence[DiagnosisCode],
        department: str = ...,
        practitioner: str = ...,
        finished: bool = True,
        elsewhere: bool = False,
    ) -> str:
        """An ambulatory encounter in the morning of hospital day `on`, with one diagnosis carrying `codes`;
        unfinished if not `finished`, at another hospital if `elsewhere`. Returns the encounter's reference."""
        ...

    async def add_document(
        self,
        *,
        patient_ref: str,
        title: str,
        on: date,
        content_type: str,
        size: int | None = None,
        sha1_hex: str | None = None,
    ) -> str:
        """A current document filed on hospital day `on`; returns its reference."""
        ...


def _today() -> date:
    return datetime.now(HOSPITAL_TZ).date()


def _disease(name: str = "胃痞病") -> list[DiagnosisCode]:
    """A fresh TCM disease code (so no other test's record can match it) with an ICD-10 code beside it."""
    return [
        DiagnosisCode(
            kind=CodeKind.TCM_DISEASE, system=TCM_DISEASE_SYSTEM, code=f"T{uuid.uuid4().hex[:8]}", display=name
        ),
        DiagnosisCode(kind=CodeKind.ICD10, system=ICD10_SYSTEM, code="K30", display="功能性消化不良"),
    ]


class EmrContract:
    async def _patient(self, simulator: EmrSimulator, name: str = "李时珍") -> tuple[str, str]:
        number = idcard.random_valid()
        return number, await simulator.add_patient(id_card_no=number, name=name)

    def test_implements_protocol(self, adapter: Emr) -> None:
        assert isinstance(adapter, Emr)
        assert adapter.name

    async def test_identity_needs_both_name_and_id_card(self, adapter: Emr, simulator: EmrSimulator) -> None:
        number, ref = await self._patient(simulator, "李时珍")
        found = await adapter.find_patient(id_card_no=number, name="李时珍")
        assert found is not None
        assert (found.ref, found.name) == (ref, "李时珍")
        # As people type them: lower-case check letter, stray spaces, a full-width space inside the name.
        typed = await adapter.find_patient(id_card_no=f" {number.lower()} ", name="李\u3000时珍")
        assert typed is not None and typed.ref == ref
        assert await adapter.find_patient(id_card_no=number, name="李时真") is None
        assert await adapter.find_patient(id_card_no=idcard.random_valid(), name="李时珍") is None

    async def test_diagnoses_within_the_window_only(self, adapter: Emr, simulator: EmrSimulator) -> None:
        _, ref = await self._patient(simulator)
        today = _today()
        codes = _disease()
        recent = await simulator.add_encounter(
            patient_ref=ref,
            on=today - timedelta(days=30),
            diagnosis_name="胃痞病",
            codes=codes,
            department="脾胃病科",
            practitioner="李明远",
        )
        on_the_edge = await simulator.add_encounter(
            patient_ref=ref, on=today - timedelta(days=180), diagnosis_name="胃痞病", codes=codes
        )
        await simulator.add_encounter(
            patient_ref=ref, on=today - timedelta(days=400), diagnosis_name="胃痞病", codes=codes
        )
        found = await adapter.offline_diagnoses(patient_ref=ref, since=today - timedelta(days=180))
        assert [d.encounter_ref for d in found] == [recent, on_the_edge]  # newest first
        latest = found[0]
        assert latest.name == "胃痞病"
        assert latest.has_code(codes[0].code, CodeKind.TCM_DISEASE)
        assert latest.has_code("K30", CodeKind.ICD10)
        assert not latest.has_code("K30", CodeKind.TCM_DISEASE)
        assert (latest.department, latest.practitioner) == ("脾胃病科", "李明远")
        assert latest.setting is EncounterSetting.AMBULATORY
        assert latest.diagnosed_at.tzinfo is not None
        assert latest.diagnosed_at.astimezone(HOSPITAL_TZ).date() == today - timedelta(days=30)

    async def test_syndrome_codes_keep_their_kind(self, adapter: Emr, simulator: EmrSimulator) -> None:
        _, ref = await self._patient(simulator)
        syndrome = DiagnosisCode(
            kind=CodeKind.TCM_SYNDROME,
            system=TCM_SYNDROME_SYSTEM,
            code=f"S{uuid.uuid4().hex[:8]}",
            display="肝胃不和证",
        )
        await simulator.add_encounter(
            patient_ref=ref, on=_today() - timedelta(days=3), diagnosis_name="肝胃不和证", codes=[syndrome]
        )
        [found] = await adapter.offline_diagnoses(patient_ref=ref, since=_today() - timedelta(days=30))
        assert found.has_code(syndrome.code, CodeKind.TCM_SYNDROME)

    async def test_other_hospitals_encounters_are_ignored(self, adapter: Emr, simulator: EmrSimulator) -> None:
        _, ref = await self._patient(simulator)
        on = _today() - timedelta(days=10)
        await simulator.add_encounter(patient_ref=ref, on=on, diagnosis_name="胃痞病", codes=_disease(), elsewhere=True)
        assert await adapter.offline_diagnoses(patient_ref=ref, since=on - timedelta(days=1)) == []

    async def test_unfinished_encounters_are_ignored(self, adapter: Emr, simulator: EmrSimulator) -> None:
        _, ref = await self._patient(simulator)
        on = _today() - timedelta(days=1)
        await simulator.add_encounter(patient_ref=ref, on=on, diagnosis_name="胃痞病", codes=_disease(), finished=False)
        assert await adapter.offline_diagnoses(patient_ref=ref, since=on - timedelta(days=1)) == []

    async def test_patients_records_stay_apart(self, adapter: Emr, simulator: EmrSimulator) -> None:
        (_, mine), (_, theirs) = await self._patient(simulator), await self._patient(simulator, "孙思邈")
        on = _today() - timedelta(days=5)
        encounter = await simulator.add_encounter(
            patient_ref=theirs, on=on, diagnosis_name="不寐", codes=_disease("不寐")
        )
        assert await adapter.offline_diagnoses(patient_ref=mine, since=on) == []
        assert [d.encounter_ref for d in await adapter.offline_diagnoses(patient_ref=theirs, since=on)] == [encounter]

    async def test_documents_listed_within_the_window(self, adapter: Emr, simulator: EmrSimulator) -> None:
        _, ref = await self._patient(simulator)
        today = _today()
        body = "门诊病历".encode()
        digest = hashlib.sha1(body).hexdigest()
        recent = await simulator.add_document(
            patient_ref=ref,
            title="门诊病历",
            on=today - timedelta(days=7),
            content_type="application/pdf",
            size=len(body),
            sha1_hex=digest,
        )
        older = await simulator.add_document(
            patient_ref=ref, title="舌象照片", on=today - timedelta(days=60), content_type="image/jpeg"
        )
        await simulator.add_document(
            patient_ref=ref, title="出院小结", on=today - timedelta(days=400), content_type="application/pdf"
        )
        found = await adapter.documents(patient_ref=ref, since=today - timedelta(days=180))
        assert [d.ref for d in found] == [recent, older]
        first = found[0]
        assert first.title == "门诊病历"
        assert first.created_at.astimezone(HOSPITAL_TZ).date() == today - timedelta(days=7)
        assert [(a.content_type, a.size, a.sha1_hex) for a in first.attachments] == [
            ("application/pdf", len(body), digest)
        ]
        assert [a.content_type for a in found[1].attachments] == ["image/jpeg"]

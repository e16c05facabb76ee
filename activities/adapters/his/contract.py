"""Contract every `His` implementation must pass.

    class TestMyHis(HisContract):
        @pytest.fixture
        def adapter(self): return MyHis(...)
        @pytest.fixture
        def simulator(self): return MyHisTestData(...)   # see `HisSimulator`

Each test uses a fresh patient and doctor code, so the suite can run against a shared test HIS.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from activities.adapters.his import His, PatientIdentity
from models import idcard
from models.revisit import OfflineDiagnosis


class HisSimulator(Protocol):
    """Puts offline records into the HIS's test environment."""

    async def add_diagnosis(
        self,
        *,
        id_card_no: str,
        disease_code: str,
        disease_name: str,
        diagnosed_at: datetime,
        department: str = ...,
        doctor_name: str = ...,
        encounter_id: str | None = None,
    ) -> OfflineDiagnosis: ...


_SHANGHAI = ZoneInfo("Asia/Shanghai")


def _patient() -> PatientIdentity:
    return PatientIdentity(name="李时珍", id_card_no=idcard.random_valid())


def _doctor() -> str:
    return f"D{uuid.uuid4().hex[:8].upper()}"


def _key() -> str:
    return f"key-{uuid.uuid4().hex}"


class HisContract:
    def test_implements_protocol(self, adapter: His) -> None:
        assert isinstance(adapter, His)

    async def test_find_diagnoses_filters_patient_disease_and_date(self, adapter: His, simulator: HisSimulator) -> None:
        patient, other = _patient(), _patient()
        code = f"TCM{uuid.uuid4().hex[:6].upper()}"
        now = datetime.now(UTC)
        recent = await simulator.add_diagnosis(
            id_card_no=patient.id_card_no, disease_code=code, disease_name="胃脘痛", diagnosed_at=now - timedelta(30)
        )
        await simulator.add_diagnosis(
            id_card_no=patient.id_card_no, disease_code=code, disease_name="胃脘痛", diagnosed_at=now - timedelta(400)
        )
        await simulator.add_diagnosis(
            id_card_no=patient.id_card_no, disease_code="OTHER", disease_name="不寐", diagnosed_at=now
        )
        await simulator.add_diagnosis(
            id_card_no=other.id_card_no, disease_code=code, disease_name="胃脘痛", diagnosed_at=now
        )
        found = await adapter.find_diagnoses(patient=patient, disease_code=code, since=now - timedelta(180))
        assert [d.encounter_id for d in found] == [recent.encounter_id]
        assert found[0].disease_name == "胃脘痛"
        assert abs(found[0].diagnosed_at - recent.diagnosed_at) < timedelta(seconds=1)
        none = await adapter.find_diagnoses(patient=_patient(), disease_code=code, since=now - timedelta(180))
        assert none == []

    async def test_register_visit_is_idempotent(self, adapter: His) -> None:
        patient, doctor, key = _patient(), _doctor(), _key()
        starts_at = datetime.now(UTC) + timedelta(days=1)
        args = dict(idempotency_key=key, patient=patient, visit_id=f"v-{uuid.uuid4().hex[:12]}", doctor_code=doctor)
        first = await adapter.register_visit(**args, starts_at=starts_at)  # type: ignore[arg-type]
        again = await adapter.register_visit(**args, starts_at=starts_at)  # type: ignore[arg-type]
        assert again == first
        assert first.his_registration_no and first.queue_no >= 1

    async def test_queue_numbers_increase_per_doctor_and_day(self, adapter: His) -> None:
        doctor = _doctor()
        # 09:00 in Shanghai two days ahead, so the three slots fall on one hospital day.
        day = (datetime.now(_SHANGHAI) + timedelta(days=2)).date()
        starts_at = datetime.combine(day, time(9), tzinfo=_SHANGHAI).astimezone(UTC)
        registrations = [
            await adapter.register_visit(
                idempotency_key=_key(),
                patient=_patient(),
                visit_id=f"v-{uuid.uuid4().hex[:12]}",
                doctor_code=doctor,
                starts_at=starts_at + timedelta(minutes=10 * n),
            )
            for n in range(3)
        ]
        queue = [r.queue_no for r in registrations]
        assert queue == sorted(queue) and len(set(queue)) == 3
        assert len({r.his_registration_no for r in registrations}) == 3

    async def test_cancel_registration_is_idempotent(self, adapter: His) -> None:
        registration = await adapter.register_visit(
            idempotency_key=_key(),
            patient=_patient(),
            visit_id=f"v-{uuid.uuid4().hex[:12]}",
            doctor_code=_doctor(),
            starts_at=datetime.now(UTC) + timedelta(days=1),
        )
        key = _key()
        await adapter.cancel_registration(idempotency_key=key, his_registration_no=registration.his_registration_no)
        await adapter.cancel_registration(idempotency_key=key, his_registration_no=registration.his_registration_no)

"""Contract every `SupervisionPlatform` implementation must pass.

class TestMyPlatform(SupervisionContract):
    @pytest.fixture
    def adapter(self): return MyPlatform(...)
    @pytest.fixture
    def simulator(self): return MyPlatformTestData(...)   # see `SupervisionSimulator`
"""

from __future__ import annotations

import re
import uuid
from typing import Protocol

import pytest

from activities.adapters.errors import AdapterRefusal
from activities.adapters.supervision import SupervisionPlatform
from models.institution import InstitutionFiling, RegistrationState
from models.supervision import SupervisionKind, SupervisionRecord

_CJK = re.compile(r"[\u4e00-\u9fff]")


class SupervisionSimulator(Protocol):
    async def acceptable(self) -> InstitutionFiling:
        """A filing the platform's test environment approves."""
        ...

    async def refused(self) -> InstitutionFiling:
        """A well-formed filing the platform's reviewers reject."""
        ...

    async def records(self, kind: SupervisionKind) -> tuple[list[SupervisionRecord], SupervisionRecord]:
        """Records of `kind` (fresh ids) the platform accepts, and one it rejects."""
        ...


def _key() -> str:
    return f"key-{uuid.uuid4().hex}"


async def _decision(adapter: SupervisionPlatform, platform_ref: str) -> RegistrationState:
    for _ in range(20):
        status = await adapter.registration_status(idempotency_key=_key(), platform_ref=platform_ref)
        if status.state is not RegistrationState.PENDING:
            return status.state
    raise AssertionError("the platform never decided")


class SupervisionContract:
    def test_implements_protocol(self, adapter: SupervisionPlatform) -> None:
        assert isinstance(adapter, SupervisionPlatform)

    async def test_registration_is_approved_and_then_found(
        self, adapter: SupervisionPlatform, simulator: SupervisionSimulator
    ) -> None:
        filing = await simulator.acceptable()
        key = _key()
        receipt = await adapter.register_institution(idempotency_key=key, filing=filing)
        assert await adapter.register_institution(idempotency_key=key, filing=filing) == receipt
        assert await _decision(adapter, receipt.platform_ref) is RegistrationState.APPROVED
        record = await adapter.lookup_institution(idempotency_key=_key(), code=filing.code)
        assert record.found and record.approved and record.name == filing.name

    async def test_rejection_carries_a_chinese_reason(
        self, adapter: SupervisionPlatform, simulator: SupervisionSimulator
    ) -> None:
        filing = await simulator.refused()
        receipt = await adapter.register_institution(idempotency_key=_key(), filing=filing)
        assert await _decision(adapter, receipt.platform_ref) is RegistrationState.REJECTED
        status = await adapter.registration_status(idempotency_key=_key(), platform_ref=receipt.platform_ref)
        assert status.reason and _CJK.search(status.reason)

    async def test_unknown_institution_is_not_found(self, adapter: SupervisionPlatform) -> None:
        record = await adapter.lookup_institution(idempotency_key=_key(), code=f"NONE{uuid.uuid4().hex[:12]}")
        assert not record.found and not record.approved

    async def test_malformed_filing_is_refused(
        self, adapter: SupervisionPlatform, simulator: SupervisionSimulator
    ) -> None:
        filing = await simulator.acceptable()
        for bad in (filing.model_copy(update={"access_ips": ["not-an-ip"]}), filing.model_copy(update={"code": "?"})):
            with pytest.raises(AdapterRefusal) as refusal:
                await adapter.register_institution(idempotency_key=_key(), filing=bad)
            assert _CJK.search(refusal.value.message)

    @pytest.mark.parametrize("kind", list(SupervisionKind))
    async def test_each_record_is_answered_on_its_own(
        self, adapter: SupervisionPlatform, simulator: SupervisionSimulator, kind: SupervisionKind
    ) -> None:
        good, bad = await simulator.records(kind)
        key = _key()
        receipt = await adapter.upload_records(idempotency_key=key, kind=kind, records=[*good, bad])
        assert await adapter.upload_records(idempotency_key=key, kind=kind, records=[*good, bad]) == receipt
        answers = {outcome.record_id: outcome for outcome in receipt.outcomes}
        assert set(answers) == {record.record_id for record in [*good, bad]}
        assert all(answers[record.record_id].accepted for record in good)
        rejected = answers[bad.record_id]
        assert not rejected.accepted and rejected.code and rejected.reason and _CJK.search(rejected.reason)
        # Sent again once put right, under the same id, the record replaces the rejected one.
        fixed = good[0].model_copy(update={"record_id": bad.record_id})
        [again] = (await adapter.upload_records(idempotency_key=_key(), kind=kind, records=[fixed])).outcomes
        assert again.accepted

    async def test_an_upload_it_cannot_take_is_refused(
        self, adapter: SupervisionPlatform, simulator: SupervisionSimulator
    ) -> None:
        revisits, _ = await simulator.records(SupervisionKind.REVISIT)
        for kind, records in ((SupervisionKind.REVISIT, []), (SupervisionKind.PRESCRIPTION, revisits)):
            with pytest.raises(AdapterRefusal) as refusal:
                await adapter.upload_records(idempotency_key=_key(), kind=kind, records=records)
            assert _CJK.search(refusal.value.message)

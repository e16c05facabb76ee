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

_CJK = re.compile(r"[\u4e00-\u9fff]")


class SupervisionSimulator(Protocol):
    async def acceptable(self) -> InstitutionFiling:
        """A filing the platform's test environment approves."""
        ...

    async def refused(self) -> InstitutionFiling:
        """A well-formed filing the platform's reviewers reject."""
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

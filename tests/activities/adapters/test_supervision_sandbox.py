from __future__ import annotations

import uuid

import pytest

from activities.adapters.supervision.contract import SupervisionContract
from activities.adapters.supervision.sandbox import SandboxSupervision
from models.institution import InstitutionFiling, RegistrationState


def filing() -> InstitutionFiling:
    code = f"PDY{uuid.uuid4().hex[:10].upper()}"
    return InstitutionFiling(
        code=code, name="岐黄中医互联网医院", kind="互联网医院", licence_no=code, access_ips=["203.0.113.10"]
    )


class Filings:
    def __init__(self, adapter: SandboxSupervision) -> None:
        self.adapter = adapter

    async def acceptable(self) -> InstitutionFiling:
        return filing()

    async def refused(self) -> InstitutionFiling:
        refused = filing()
        self.adapter.refused.add(refused.code)
        return refused


@pytest.fixture
def adapter(sessions, settings) -> SandboxSupervision:  # type: ignore[no-untyped-def]
    return SandboxSupervision(sessions, settings)


@pytest.fixture
def simulator(adapter: SandboxSupervision) -> Filings:
    return Filings(adapter)


class TestSandboxSupervision(SupervisionContract):
    pass


async def test_the_decision_comes_after_the_pending_polls(adapter: SandboxSupervision) -> None:
    adapter.pending_polls = 2
    receipt = await adapter.register_institution(idempotency_key=uuid.uuid4().hex, filing=filing())
    states = [
        (await adapter.registration_status(idempotency_key=uuid.uuid4().hex, platform_ref=receipt.platform_ref)).state
        for _ in range(3)
    ]
    assert states == [RegistrationState.PENDING, RegistrationState.PENDING, RegistrationState.APPROVED]

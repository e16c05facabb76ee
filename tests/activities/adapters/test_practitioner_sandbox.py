from __future__ import annotations

import uuid
from datetime import date

import pytest

from activities.adapters.practitioner.contract import PractitionerRegistryContract
from activities.adapters.practitioner.sandbox import SandboxPractitionerRegistry, sandbox_licence
from models import idcard


class Practitioners:
    """The contract's simulator: sandbox licence numbers carry their first registration date."""

    async def registered(self, first_registered_on: date) -> tuple[str, str, str]:
        return (
            "李时珍",
            sandbox_licence(first_registered_on, serial=int(uuid.uuid4().int % 999_998) + 1),
            idcard.random_valid(),
        )

    async def unregistered(self) -> tuple[str, str, str]:
        return "李时珍", "220150701000000", idcard.random_valid()


@pytest.fixture
def adapter(sessions, settings) -> SandboxPractitionerRegistry:  # type: ignore[no-untyped-def]
    return SandboxPractitionerRegistry(sessions, settings)


@pytest.fixture
def simulator() -> Practitioners:
    return Practitioners()


class TestSandboxPractitionerRegistry(PractitionerRegistryContract):
    pass


def key() -> str:
    return f"key-{uuid.uuid4().hex}"


async def test_revoked_and_other_persons_licences(adapter: SandboxPractitionerRegistry) -> None:
    revoked = await adapter.lookup(
        idempotency_key=key(), name="李时珍", licence_no="220150701999999", id_card_no=idcard.random_valid()
    )
    assert revoked.found and revoked.status == "revoked"
    licence = sandbox_licence(date(2012, 5, 6), category="1", serial=42)
    adapter.register_to_other(licence)
    other = await adapter.lookup(
        idempotency_key=key(), name="李时珍", licence_no=licence, id_card_no=idcard.random_valid()
    )
    assert other.found and not other.name_matches
    assert (other.practice_category, other.first_registered_on) == ("临床", date(2012, 5, 6))


async def test_impossible_registration_date_is_malformed(adapter: SandboxPractitionerRegistry) -> None:
    answer = await adapter.lookup(
        idempotency_key=key(), name="李时珍", licence_no="220151341000001", id_card_no=idcard.random_valid()
    )
    assert not answer.found and "注册日期无效" in (answer.reason or "")

"""Contract every `PractitionerRegistry` implementation must pass.

class TestMyRegistry(PractitionerRegistryContract):
    @pytest.fixture
    def adapter(self): return MyRegistry(...)
    @pytest.fixture
    def simulator(self): return MyRegistryTestData(...)   # see `RegistrySimulator`
"""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Protocol

from activities.adapters.practitioner import PractitionerRegistry

_CJK = re.compile(r"[\u4e00-\u9fff]")


class RegistrySimulator(Protocol):
    """Practitioners known to the registry's test environment, as (name, licence_no, id_card_no)."""

    async def registered(self, first_registered_on: date) -> tuple[str, str, str]:
        """A practitioner with a valid registration first made on that day."""
        ...

    async def unregistered(self) -> tuple[str, str, str]:
        """A well-formed licence number the registry does not know."""
        ...


def _key() -> str:
    return f"key-{uuid.uuid4().hex}"


class PractitionerRegistryContract:
    def test_implements_protocol(self, adapter: PractitionerRegistry) -> None:
        assert isinstance(adapter, PractitionerRegistry)

    async def test_registered_practitioner_is_found_with_first_registration(
        self, adapter: PractitionerRegistry, simulator: RegistrySimulator
    ) -> None:
        name, licence_no, id_card_no = await simulator.registered(date(2015, 7, 1))
        key = _key()
        found = await adapter.lookup(idempotency_key=key, name=name, licence_no=licence_no, id_card_no=id_card_no)
        again = await adapter.lookup(idempotency_key=key, name=name, licence_no=licence_no, id_card_no=id_card_no)
        assert found.found and found.name_matches and found.status == "valid"
        assert found.first_registered_on in (None, date(2015, 7, 1))
        assert again == found

    async def test_unknown_licence_is_not_found_with_a_chinese_reason(
        self, adapter: PractitionerRegistry, simulator: RegistrySimulator
    ) -> None:
        name, licence_no, id_card_no = await simulator.unregistered()
        answer = await adapter.lookup(idempotency_key=_key(), name=name, licence_no=licence_no, id_card_no=id_card_no)
        assert not answer.found
        assert answer.reason and _CJK.search(answer.reason)

    async def test_malformed_licence_is_not_found(
        self, adapter: PractitionerRegistry, simulator: RegistrySimulator
    ) -> None:
        name, _, id_card_no = await simulator.registered(date(2015, 7, 1))
        for bad in ("", "12345", "ABCDEFGHIJKLMNO", "1" * 16):
            answer = await adapter.lookup(idempotency_key=_key(), name=name, licence_no=bad, id_card_no=id_card_no)
            assert not answer.found, bad
            assert answer.reason and _CJK.search(answer.reason)

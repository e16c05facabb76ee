"""Contract every `RealName` implementation must pass.

class TestMyRealName(RealNameContract):
    @pytest.fixture
    def adapter(self): return MyRealName(...)
    @pytest.fixture
    def simulator(self): return MyRealNameTestData(...)   # see `RealNameSimulator`
"""

from __future__ import annotations

import re
import uuid
from typing import Protocol

from activities.adapters.realname import RealName
from models import idcard

_CJK = re.compile(r"[\u4e00-\u9fff]")


class RealNameSimulator(Protocol):
    """Test identities known to the provider's test environment, as (name, id_card_no, phone)."""

    async def matching_identity(self) -> tuple[str, str, str]:
        """An identity the provider confirms."""
        ...

    async def refused_identity(self) -> tuple[str, str, str]:
        """A well-formed identity the provider does not confirm (e.g. the name does not belong to the number)."""
        ...


def _key() -> str:
    return f"key-{uuid.uuid4().hex}"


class RealNameContract:
    def test_implements_protocol(self, adapter: RealName) -> None:
        assert isinstance(adapter, RealName)

    async def test_matching_identity_is_confirmed_once_per_key(
        self, adapter: RealName, simulator: RealNameSimulator
    ) -> None:
        name, id_card_no, phone = await simulator.matching_identity()
        key = _key()
        first = await adapter.verify(idempotency_key=key, name=name, id_card_no=id_card_no, phone=phone)
        again = await adapter.verify(idempotency_key=key, name=name, id_card_no=id_card_no, phone=phone)
        assert first.matched and first.reason is None
        assert again == first

    async def test_refused_identity_has_chinese_reason(self, adapter: RealName, simulator: RealNameSimulator) -> None:
        name, id_card_no, phone = await simulator.refused_identity()
        result = await adapter.verify(idempotency_key=_key(), name=name, id_card_no=id_card_no, phone=phone)
        assert not result.matched
        assert result.reason and _CJK.search(result.reason)

    async def test_malformed_input_is_refused(self, adapter: RealName, simulator: RealNameSimulator) -> None:
        name, id_card_no, phone = await simulator.matching_identity()
        number = idcard.normalize(id_card_no)
        wrong_check = number[:17] + ("0" if number[17] != "0" else "1")
        for bad in (
            {"name": name, "id_card_no": wrong_check, "phone": phone},
            {"name": name, "id_card_no": number[:17], "phone": phone},
            {"name": name, "id_card_no": id_card_no, "phone": "23800138000"},
            {"name": name, "id_card_no": id_card_no, "phone": "1380013800"},
            {"name": "Zhang San", "id_card_no": id_card_no, "phone": phone},
        ):
            result = await adapter.verify(idempotency_key=_key(), **bad)
            assert not result.matched, bad
            assert result.reason and _CJK.search(result.reason)

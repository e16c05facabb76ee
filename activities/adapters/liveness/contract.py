"""Contract every `Liveness` implementation must pass.

class TestMyLiveness(LivenessContract):
    @pytest.fixture
    def adapter(self): return MyLiveness(...)
    @pytest.fixture
    def simulator(self): return MyLivenessTestData(...)   # see `LivenessSimulator`
"""

from __future__ import annotations

import re
import uuid
from typing import Protocol

from activities.adapters.liveness import Liveness
from models import idcard

_CJK = re.compile(r"[\u4e00-\u9fff]")


class LivenessSimulator(Protocol):
    """Tokens of live checks made in the provider's test environment."""

    async def live_token(self) -> str:
        """A check that saw the ID card's holder, live."""
        ...

    async def spoofed_token(self) -> str:
        """A check that saw no live person (a photo or a screen)."""
        ...

    async def other_face_token(self) -> str:
        """A live person who is not the ID card's holder."""
        ...


def _key() -> str:
    return f"key-{uuid.uuid4().hex}"


class LivenessContract:
    def test_implements_protocol(self, adapter: Liveness) -> None:
        assert isinstance(adapter, Liveness)

    async def test_live_holder_passes_once_per_key(self, adapter: Liveness, simulator: LivenessSimulator) -> None:
        token, number, key = await simulator.live_token(), idcard.random_valid(), _key()
        first = await adapter.verify(idempotency_key=key, name="王小明", id_card_no=number, token=token)
        again = await adapter.verify(idempotency_key=key, name="王小明", id_card_no=number, token=token)
        assert first.passed and first.reason is None
        assert again == first

    async def test_failures_have_chinese_reasons(self, adapter: Liveness, simulator: LivenessSimulator) -> None:
        for token in (await simulator.spoofed_token(), await simulator.other_face_token(), "no-such-token"):
            result = await adapter.verify(
                idempotency_key=_key(), name="王小明", id_card_no=idcard.random_valid(), token=token
            )
            assert not result.passed, token
            assert result.reason and _CJK.search(result.reason)

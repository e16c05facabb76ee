"""Contract every `Notifier` implementation must pass.

class TestMyNotifier(NotifierContract):
    @pytest.fixture
    def adapter(self): return MyNotifier(...)
    @pytest.fixture
    def simulator(self): return MyNotifierOutbox(...)   # see `NotifierSimulator`
"""

from __future__ import annotations

import uuid
from typing import Protocol

from activities.adapters.notifier import Notifier
from models.common import Channel


class NotifierSimulator(Protocol):
    """Reads what reached the recipients in the provider's test environment."""

    async def delivered(self, user_id: str) -> list[str]:
        """Message ids delivered to `user_id`, oldest first."""
        ...


class NotifierContract:
    def test_implements_protocol(self, adapter: Notifier) -> None:
        assert isinstance(adapter, Notifier)

    async def test_same_key_sends_once(self, adapter: Notifier, simulator: NotifierSimulator) -> None:
        user, key = f"u-{uuid.uuid4().hex[:12]}", f"key-{uuid.uuid4().hex}"
        args = dict(
            idempotency_key=key,
            channel=Channel.SMS,
            phone="13800138000",
            user_id=user,
            title="缴费提醒",
            body="请在 15 分钟内完成缴费",
        )
        first = await adapter.send(**args)  # type: ignore[arg-type]
        again = await adapter.send(**args)  # type: ignore[arg-type]
        assert first and again == first
        assert await simulator.delivered(user) == [first]

    async def test_different_keys_send_separately(self, adapter: Notifier, simulator: NotifierSimulator) -> None:
        user = f"u-{uuid.uuid4().hex[:12]}"
        ids = [
            await adapter.send(
                idempotency_key=f"key-{uuid.uuid4().hex}",
                channel=Channel.APP,
                phone=None,
                user_id=user,
                title="复诊提醒",
                body=f"第 {n} 条",
            )
            for n in (1, 2)
        ]
        assert len(set(ids)) == 2
        assert await simulator.delivered(user) == ids

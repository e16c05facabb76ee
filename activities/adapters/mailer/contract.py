"""Contract every `Mailer` implementation must pass.

class TestMyMailer(MailerContract):
    @pytest.fixture
    def adapter(self): return MyMailer(...)
    @pytest.fixture
    def simulator(self): return MyMailbox(...)   # see `MailerSimulator`
"""

from __future__ import annotations

import uuid
from typing import Protocol

from activities.adapters.mailer import Mailer


class MailerSimulator(Protocol):
    """Reads what reached the mailboxes of the server the adapter sends to (a local test server, a sandbox)."""

    async def delivered(self, address: str) -> list[str]:
        """Message-IDs of the e-mails delivered to `address`, oldest first."""
        ...


def _address() -> str:
    return f"finance-{uuid.uuid4().hex[:10]}@hospital.example"


class MailerContract:
    def test_implements_protocol(self, adapter: Mailer) -> None:
        assert isinstance(adapter, Mailer)

    async def test_same_key_sends_once(self, adapter: Mailer, simulator: MailerSimulator) -> None:
        to, key = _address(), f"key-{uuid.uuid4().hex}"
        args = dict(
            idempotency_key=key,
            to=to,
            subject="【对账异常】微信支付 2026-11-25 对账差错 2 笔待处理",
            text="微信支付 2026-11-25 对账发现差错 2 笔。",
            html="<p>微信支付 2026-11-25 对账发现差错 2 笔。</p>",
        )
        first = await adapter.send(**args)
        again = await adapter.send(**args)
        assert first and again == first
        assert await simulator.delivered(to) == [first]

    async def test_different_keys_send_separately(self, adapter: Mailer, simulator: MailerSimulator) -> None:
        to = _address()
        ids = [
            await adapter.send(
                idempotency_key=f"key-{uuid.uuid4().hex}",
                to=to,
                subject="【对账结果】支付宝 2026-11-25 对账平衡",
                text=f"第 {n} 封",
                html=f"<p>第 {n} 封</p>",
            )
            for n in (1, 2)
        ]
        assert len(set(ids)) == 2
        assert await simulator.delivered(to) == ids

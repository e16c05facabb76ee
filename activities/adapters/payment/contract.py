"""Contract every `PaymentChannel` implementation must pass.

Use it from your own test module (pytest with pytest-asyncio, `asyncio_mode = "auto"`):

    class TestMyChannel(PaymentChannelContract):
        @pytest.fixture
        def adapter(self): return MyChannel(...)
        @pytest.fixture
        def simulator(self): return MyChannelTestPeer(...)   # see `PaymentSimulator`

Each test uses fresh order numbers, so the suite can run against a shared test merchant.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest

from activities.adapters.errors import AdapterRefusal, InvalidCallback
from activities.adapters.payment import PaymentChannel
from models.billing import ChannelOrderStatus, RefundStatus


class PaymentSimulator(Protocol):
    """The payer's side of the channel's test environment."""

    async def simulate_payment(
        self, out_trade_no: str, *, signed_at: datetime | None = None
    ) -> tuple[Mapping[str, str], bytes]:
        """Pay the order (charging at most once) and return the callback (headers, body) the channel sends,
        signed as of `signed_at` (default now). Paying a closed order raises `AdapterRefusal`."""
        ...

    async def charges(self, out_trade_no: str) -> int:
        """How many times the payer's account was charged for this order."""
        ...


def _ids() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:16]
    return f"ct-{tag}", f"key-{tag}"


def _later() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=15)


class PaymentChannelContract:
    amount_fen = 12_345

    async def _order(self, adapter: PaymentChannel, amount_fen: int | None = None) -> str:
        out_trade_no, key = _ids()
        await adapter.create_order(
            idempotency_key=key,
            out_trade_no=out_trade_no,
            amount_fen=amount_fen or self.amount_fen,
            description="挂号费",
            expires_at=_later(),
        )
        return out_trade_no

    async def _paid(self, adapter: PaymentChannel, simulator: PaymentSimulator, amount_fen: int | None = None) -> str:
        out_trade_no = await self._order(adapter, amount_fen)
        headers, body = await simulator.simulate_payment(out_trade_no)
        adapter.parse_payment_notice(headers, body)
        return out_trade_no

    def test_implements_protocol(self, adapter: PaymentChannel) -> None:
        assert isinstance(adapter, PaymentChannel)
        assert adapter.name

    async def test_create_order_is_idempotent(self, adapter: PaymentChannel) -> None:
        out_trade_no, key = _ids()
        expires_at = _later()
        # A retried activity sends exactly the same arguments.
        first, again = [
            await adapter.create_order(
                idempotency_key=key,
                out_trade_no=out_trade_no,
                amount_fen=self.amount_fen,
                description="挂号费",
                expires_at=expires_at,
            )
            for _ in range(2)
        ]
        assert first.status == ChannelOrderStatus.NOTPAY
        assert first.amount_fen == self.amount_fen
        assert first.prepay_id or first.pay_url
        assert (again.prepay_id, again.pay_url) == (first.prepay_id, first.pay_url)
        queried = await adapter.query_order(out_trade_no=out_trade_no)
        assert queried.status == ChannelOrderStatus.NOTPAY

    async def test_payment_notice_verifies_and_order_reads_paid(
        self, adapter: PaymentChannel, simulator: PaymentSimulator
    ) -> None:
        out_trade_no = await self._order(adapter)
        headers, body = await simulator.simulate_payment(out_trade_no)
        notice = adapter.parse_payment_notice(headers, body)
        assert notice.out_trade_no == out_trade_no
        assert notice.status == ChannelOrderStatus.SUCCESS
        assert notice.amount_fen == self.amount_fen
        assert notice.transaction_id
        order = await adapter.query_order(out_trade_no=out_trade_no)
        assert order.status == ChannelOrderStatus.SUCCESS
        assert order.transaction_id == notice.transaction_id
        assert await simulator.charges(out_trade_no) == 1

    async def test_paying_twice_charges_once(self, adapter: PaymentChannel, simulator: PaymentSimulator) -> None:
        out_trade_no = await self._order(adapter)
        first = adapter.parse_payment_notice(*await simulator.simulate_payment(out_trade_no))
        second = adapter.parse_payment_notice(*await simulator.simulate_payment(out_trade_no))
        assert second.transaction_id == first.transaction_id
        assert await simulator.charges(out_trade_no) == 1

    async def test_redelivered_callback_is_accepted(self, adapter: PaymentChannel, simulator: PaymentSimulator) -> None:
        # Channels redeliver until acknowledged; the receiving flow, not the parser, makes that idempotent.
        out_trade_no = await self._order(adapter)
        headers, body = await simulator.simulate_payment(out_trade_no)
        assert adapter.parse_payment_notice(headers, body) == adapter.parse_payment_notice(headers, body)

    async def test_close_unpaid_order_then_payment_is_refused(
        self, adapter: PaymentChannel, simulator: PaymentSimulator
    ) -> None:
        out_trade_no, key = await self._order(adapter), f"close-{uuid.uuid4().hex}"
        closed = await adapter.close_order(idempotency_key=key, out_trade_no=out_trade_no)
        assert closed.status == ChannelOrderStatus.CLOSED
        assert (await adapter.close_order(idempotency_key=key, out_trade_no=out_trade_no)).status == "CLOSED"
        with pytest.raises(AdapterRefusal):
            await simulator.simulate_payment(out_trade_no)
        assert await simulator.charges(out_trade_no) == 0
        assert (await adapter.query_order(out_trade_no=out_trade_no)).status == ChannelOrderStatus.CLOSED

    async def test_close_after_payment_reports_paid(self, adapter: PaymentChannel, simulator: PaymentSimulator) -> None:
        out_trade_no = await self._paid(adapter, simulator)
        closed = await adapter.close_order(idempotency_key=f"close-{uuid.uuid4().hex}", out_trade_no=out_trade_no)
        assert closed.status == ChannelOrderStatus.SUCCESS
        assert (await adapter.query_order(out_trade_no=out_trade_no)).status == ChannelOrderStatus.SUCCESS

    async def test_refunds_are_idempotent_and_capped_at_paid(
        self, adapter: PaymentChannel, simulator: PaymentSimulator
    ) -> None:
        out_trade_no = await self._paid(adapter, simulator, amount_fen=10_000)
        tag = uuid.uuid4().hex[:12]

        async def refund(n: str, amount: int):  # type: ignore[no-untyped-def]
            return await adapter.refund(
                idempotency_key=f"rf-key-{tag}-{n}",
                out_trade_no=out_trade_no,
                out_refund_no=f"rf-{tag}-{n}",
                amount_fen=amount,
                reason="患者取消",
            )

        first = await refund("a", 6_000)
        retried = await refund("a", 6_000)  # the same refund retried: must not count twice towards the cap
        assert retried.refund_id == first.refund_id
        assert first.amount_fen == 6_000
        with pytest.raises(AdapterRefusal) as refused:
            await refund("b", 4_001)
        assert refused.value.code == "REFUND_EXCEEDS_PAID"
        rest = await refund("c", 4_000)
        assert rest.status in (RefundStatus.PROCESSING, RefundStatus.SUCCEEDED)
        with pytest.raises(AdapterRefusal):
            await refund("d", 1)
        queried = await adapter.query_refund(out_trade_no=out_trade_no, out_refund_no=f"rf-{tag}-a")
        assert (queried.out_trade_no, queried.amount_fen) == (out_trade_no, 6_000)

    async def test_refund_of_unpaid_order_is_refused(self, adapter: PaymentChannel) -> None:
        out_trade_no = await self._order(adapter)
        with pytest.raises(AdapterRefusal):
            await adapter.refund(
                idempotency_key=f"rf-{uuid.uuid4().hex}",
                out_trade_no=out_trade_no,
                out_refund_no=f"rf-{uuid.uuid4().hex[:20]}",
                amount_fen=1,
                reason="测试",
            )

    async def test_forged_callbacks_are_refused(self, adapter: PaymentChannel, simulator: PaymentSimulator) -> None:
        out_trade_no = await self._order(adapter, amount_fen=100)
        headers, body = await simulator.simulate_payment(out_trade_no)
        # Channels differ in what they show in clear (WeChat Pay encrypts the amount), but each signs every byte.
        for tampered in (_flipped(body, len(body) // 2), _flipped(body, len(body) - 2), body + b" "):
            with pytest.raises(InvalidCallback):
                adapter.parse_payment_notice(headers, tampered)
        for name in headers:
            with pytest.raises(InvalidCallback):  # any header missing
                adapter.parse_payment_notice({k: v for k, v in headers.items() if k != name}, body)
            with pytest.raises(InvalidCallback):  # any header altered
                adapter.parse_payment_notice({**headers, name: _altered(headers[name])}, body)

    async def test_stale_callbacks_are_refused(self, adapter: PaymentChannel, simulator: PaymentSimulator) -> None:
        out_trade_no = await self._order(adapter)
        for skew in (timedelta(hours=-1), timedelta(hours=1)):
            headers, body = await simulator.simulate_payment(out_trade_no, signed_at=datetime.now(UTC) + skew)
            with pytest.raises(InvalidCallback):
                adapter.parse_payment_notice(headers, body)


def _flipped(body: bytes, at: int) -> bytes:
    """The body with one byte changed to a neighbouring ASCII character."""
    return body[:at] + bytes([body[at] ^ 1]) + body[at + 1 :]


def _altered(value: str) -> str:
    """The same value with its last character changed (digits stay digits, so only the meaning changes)."""
    last = value[-1]
    swap = "0" if last != "0" else "1"
    return value[:-1] + swap

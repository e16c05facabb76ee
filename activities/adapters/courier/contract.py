"""Contract every `Courier` implementation must pass.

    class TestMyCourier(CourierContract):
        @pytest.fixture
        def adapter(self): return MyCourier(...)
        @pytest.fixture
        def simulator(self): return MyCourierTestPeer(...)   # see `CourierSimulator`

Each test ships a fresh order reference, so the suite can run against a shared test account.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest

from activities.adapters.courier import Consignee, Courier
from activities.adapters.errors import InvalidCallback
from models.fulfilment import CourierStatus


class CourierSimulator(Protocol):
    """Moves parcels in the courier's test environment."""

    async def advance(
        self, waybill_no: str, status: CourierStatus, *, note: str = "", signed_at: datetime | None = None
    ) -> tuple[Mapping[str, str], bytes]:
        """Record a status change and return the webhook (headers, body) the courier pushes for it, signed as of
        `signed_at` (default now)."""
        ...


CONSIGNEE = Consignee(name="张仲景", phone="13800138000", address="河南省南阳市卧龙区医圣祠街 1 号")


class CourierContract:
    def test_implements_protocol(self, adapter: Courier) -> None:
        assert isinstance(adapter, Courier)

    async def _ship(self, adapter: Courier) -> str:
        shipment = await adapter.create_shipment(
            idempotency_key=f"key-{uuid.uuid4().hex}", order_ref=f"rx-{uuid.uuid4().hex[:16]}", consignee=CONSIGNEE
        )
        return shipment.waybill_no

    async def test_create_shipment_is_idempotent(self, adapter: Courier) -> None:
        key, order_ref = f"key-{uuid.uuid4().hex}", f"rx-{uuid.uuid4().hex[:16]}"
        first = await adapter.create_shipment(idempotency_key=key, order_ref=order_ref, consignee=CONSIGNEE)
        again = await adapter.create_shipment(idempotency_key=key, order_ref=order_ref, consignee=CONSIGNEE)
        assert first.waybill_no and again == first
        await adapter.track(waybill_no=first.waybill_no)  # a fresh waybill is trackable

    async def test_webhook_verifies_and_tracking_follows(self, adapter: Courier, simulator: CourierSimulator) -> None:
        waybill_no = await self._ship(adapter)
        for status in (CourierStatus.PICKED_UP, CourierStatus.IN_TRANSIT, CourierStatus.DELIVERED):
            event = adapter.parse_webhook(*await simulator.advance(waybill_no, status))
            assert (event.waybill_no, event.status) == (waybill_no, status)
            assert event.occurred_at.tzinfo is not None
        statuses = [e.status for e in await adapter.track(waybill_no=waybill_no)]
        assert statuses[-3:] == [CourierStatus.PICKED_UP, CourierStatus.IN_TRANSIT, CourierStatus.DELIVERED]

    async def test_forged_webhooks_are_refused(self, adapter: Courier, simulator: CourierSimulator) -> None:
        waybill_no = await self._ship(adapter)
        headers, body = await simulator.advance(waybill_no, CourierStatus.IN_TRANSIT)
        forged = body.replace(b"in_transit", b"delivered")
        assert forged != body
        with pytest.raises(InvalidCallback):
            adapter.parse_webhook(headers, forged)
        for name in headers:
            with pytest.raises(InvalidCallback):
                adapter.parse_webhook({k: v for k, v in headers.items() if k != name}, body)
            with pytest.raises(InvalidCallback):
                adapter.parse_webhook(
                    {**headers, name: headers[name][:-1] + ("0" if headers[name][-1] != "0" else "1")}, body
                )

    async def test_stale_webhooks_are_refused(self, adapter: Courier, simulator: CourierSimulator) -> None:
        waybill_no = await self._ship(adapter)
        headers, body = await simulator.advance(
            waybill_no, CourierStatus.PICKED_UP, signed_at=datetime.now(UTC) - timedelta(hours=1)
        )
        with pytest.raises(InvalidCallback):
            adapter.parse_webhook(headers, body)

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select
from sqlmodel import col

from activities.adapters.courier.contract import CONSIGNEE, CourierContract
from activities.adapters.courier.sandbox import SandboxCourier, waybill_for
from activities.adapters.errors import AdapterRefusal
from models.fulfilment import CourierStatus
from models.tables.sandbox import SandboxCall, SandboxShipment


@pytest.fixture
def adapter(sessions, settings) -> SandboxCourier:  # type: ignore[no-untyped-def]
    return SandboxCourier(sessions, settings)


@pytest.fixture
def simulator(adapter: SandboxCourier) -> SandboxCourier:
    return adapter


class TestSandboxCourier(CourierContract):
    pass


def order_ref() -> str:
    return f"rx-{uuid.uuid4().hex[:16]}"


async def test_waybill_is_derived_from_the_order(adapter: SandboxCourier) -> None:
    ref = order_ref()
    shipment = await adapter.create_shipment(idempotency_key=f"k-{ref}", order_ref=ref, consignee=CONSIGNEE)
    assert shipment.waybill_no == waybill_for(ref) and re.fullmatch(r"SB[0-9]{12}", shipment.waybill_no)
    assert shipment.carrier == "sandbox"
    events = await adapter.track(waybill_no=shipment.waybill_no)
    assert [e.status for e in events] == [CourierStatus.CREATED]


async def test_one_parcel_per_order_even_under_another_key(adapter: SandboxCourier, sessions) -> None:  # type: ignore[no-untyped-def]
    ref = order_ref()
    first = await adapter.create_shipment(idempotency_key=f"a-{ref}", order_ref=ref, consignee=CONSIGNEE)
    second = await adapter.create_shipment(idempotency_key=f"b-{ref}", order_ref=ref, consignee=CONSIGNEE)
    assert second == first
    async with sessions() as session:
        rows = (await session.scalars(select(SandboxShipment).where(col(SandboxShipment.order_ref) == ref))).all()
    assert len(rows) == 1 and len(rows[0].events) == 1


async def test_no_events_after_delivery(adapter: SandboxCourier) -> None:
    ref = order_ref()
    shipment = await adapter.create_shipment(idempotency_key=f"k-{ref}", order_ref=ref, consignee=CONSIGNEE)
    await adapter.advance(shipment.waybill_no, CourierStatus.DELIVERED, note="本人签收")
    with pytest.raises(AdapterRefusal) as refused:
        await adapter.advance(shipment.waybill_no, CourierStatus.IN_TRANSIT)
    assert refused.value.code == "SHIPMENT_CLOSED"
    events = await adapter.track(waybill_no=shipment.waybill_no)
    assert events[-1].note == "本人签收"


async def test_unknown_waybill_is_refused(adapter: SandboxCourier) -> None:
    with pytest.raises(AdapterRefusal):
        await adapter.track(waybill_no="SB000000000000")
    with pytest.raises(AdapterRefusal):
        await adapter.advance("SB000000000000", CourierStatus.PICKED_UP)


async def test_record_holds_no_address_or_phone(adapter: SandboxCourier, sessions) -> None:  # type: ignore[no-untyped-def]
    ref = order_ref()
    k = f"k-{ref}"
    await adapter.create_shipment(idempotency_key=k, order_ref=ref, consignee=CONSIGNEE)
    async with sessions() as session:
        row = (await session.scalars(select(SandboxCall).where(col(SandboxCall.idempotency_key) == k))).one()
    stored = str(row.request)
    assert CONSIGNEE.address not in stored and CONSIGNEE.phone not in stored and CONSIGNEE.name not in stored

from __future__ import annotations

import asyncio
import uuid

import pytest

from activities.adapters.errors import AdapterRefusal
from activities.adapters.pharmacy.contract import PharmacyContract
from activities.adapters.pharmacy.sandbox import SandboxPharmacy, StockShort
from models.prescription import RxItem


@pytest.fixture
def adapter(sessions, settings) -> SandboxPharmacy:  # type: ignore[no-untyped-def]
    return SandboxPharmacy(sessions, settings)


@pytest.fixture
def simulator(adapter: SandboxPharmacy) -> SandboxPharmacy:
    return adapter


class TestSandboxPharmacy(PharmacyContract):
    pass


def herb(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def key() -> str:
    return f"key-{uuid.uuid4().hex}"


async def submit(adapter: SandboxPharmacy, items: list[RxItem], doses: int, k: str | None = None):  # type: ignore[no-untyped-def]
    return await adapter.submit_order(
        idempotency_key=k or key(), prescription_id=f"rx-{uuid.uuid4().hex[:12]}", items=items, doses=doses
    )


async def test_twenty_competing_orders_never_oversell(adapter: SandboxPharmacy) -> None:
    name = herb("黄连")
    await adapter.set_stock(name, 100)
    results = await asyncio.gather(
        *(submit(adapter, [RxItem(herb=name, dose_g=5)], 3) for _ in range(20)), return_exceptions=True
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 6 and len({o.order_no for o in won}) == 6
    assert all(isinstance(r, StockShort) and r.code == "STOCK_SHORT" for r in lost)
    assert await adapter.stock_of(name) == 10


async def test_twenty_concurrent_retries_of_one_order_take_stock_once(adapter: SandboxPharmacy) -> None:
    name, k = herb("黄芩"), key()
    await adapter.set_stock(name, 1_000)
    items = [RxItem(herb=name, dose_g=9)]
    orders = await asyncio.gather(
        *(adapter.submit_order(idempotency_key=k, prescription_id="rx-same", items=items, doses=7) for _ in range(20))
    )
    assert {o.order_no for o in orders} == {orders[0].order_no}
    assert await adapter.stock_of(name) == 1_000 - 63


async def test_orders_locking_herbs_in_opposite_orders_do_not_deadlock(adapter: SandboxPharmacy) -> None:
    a, b = herb("柴胡"), herb("白芍")
    await adapter.set_stock(a, 1_000)
    await adapter.set_stock(b, 1_000)
    forward = [RxItem(herb=a, dose_g=1), RxItem(herb=b, dose_g=1)]
    backward = list(reversed(forward))
    await asyncio.wait_for(
        asyncio.gather(*(submit(adapter, forward if n % 2 else backward, 10) for n in range(20))), timeout=30
    )
    assert (await adapter.stock_of(a), await adapter.stock_of(b)) == (800, 800)


async def test_shortage_details_and_fractional_grams(adapter: SandboxPharmacy) -> None:
    fine, short = herb("砂仁"), herb("麝香")
    await adapter.set_stock(fine, 10)
    await adapter.set_stock(short, 2)
    # 0.1 g x 3 doses = 0.3 g: exact (no float dust) and takes one whole gram.
    await submit(adapter, [RxItem(herb=fine, dose_g=0.1)], 3)
    assert await adapter.stock_of(fine) == 9
    with pytest.raises(StockShort) as refused:
        await submit(
            adapter, [RxItem(herb=fine, dose_g=1), RxItem(herb=short, dose_g=0.5), RxItem(herb=short, dose_g=1)], 2
        )
    assert [(s.herb, s.needed_g, s.available_g) for s in refused.value.shortages] == [(short, 3.0, 2.0)]
    assert short in refused.value.message and "库存不足" in refused.value.message
    assert await adapter.stock_of(fine) == 9


async def test_refused_order_can_be_retried_after_restock(adapter: SandboxPharmacy) -> None:
    name, k = herb("附子"), key()
    await adapter.set_stock(name, 5)
    with pytest.raises(StockShort):
        await submit(adapter, [RxItem(herb=name, dose_g=3)], 3, k)
    await adapter.set_stock(name, 50)
    await submit(adapter, [RxItem(herb=name, dose_g=3)], 3, k)
    assert await adapter.stock_of(name) == 41


async def test_cancel_of_unknown_order_is_refused(adapter: SandboxPharmacy) -> None:
    with pytest.raises(AdapterRefusal) as refused:
        await adapter.cancel_order(idempotency_key=key(), order_no="SBPH-NOPE")
    assert refused.value.code == "ORDER_NOT_FOUND"


class TestSandboxPartnerPharmacy(PharmacyContract):
    """The same sandbox made for a partner pharmacy: its own shelves, untouched by the hospital's."""

    @pytest.fixture
    def adapter(self, sessions, settings) -> SandboxPharmacy:  # type: ignore[no-untyped-def]
        return SandboxPharmacy(sessions, settings, pharmacy_id=f"partner-{uuid.uuid4().hex[:8]}")

    @pytest.fixture
    def simulator(self, adapter: SandboxPharmacy) -> SandboxPharmacy:
        return adapter


async def test_partner_shelves_are_apart_and_one_pharmacy_cannot_cancel_anothers_order(sessions, settings) -> None:  # type: ignore[no-untyped-def]
    own = SandboxPharmacy(sessions, settings)
    east, west = (SandboxPharmacy(sessions, settings, pharmacy_id=f"p-{uuid.uuid4().hex[:8]}") for _ in range(2))
    name = herb("枸杞子")
    await own.set_stock(name, 100)
    await east.set_stock(name, 50)
    assert (await own.stock_of(name), await east.stock_of(name), await west.stock_of(name)) == (100, 50, 0)
    assert [s.available_g for s in await west.check_stock(items=[RxItem(herb=name, dose_g=10)], doses=1)] == [0]

    order = await submit(east, [RxItem(herb=name, dose_g=10)], 3)
    assert (await own.stock_of(name), await east.stock_of(name)) == (100, 20)
    with pytest.raises(AdapterRefusal) as elsewhere:
        await west.cancel_order(idempotency_key=key(), order_no=order.order_no)
    assert elsewhere.value.code == "ORDER_NOT_FOUND"
    await east.cancel_order(idempotency_key=key(), order_no=order.order_no)
    assert (await own.stock_of(name), await east.stock_of(name)) == (100, 50)

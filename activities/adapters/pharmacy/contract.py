"""Contract every `Pharmacy` implementation must pass.

    class TestMyPharmacy(PharmacyContract):
        @pytest.fixture
        def adapter(self): return MyPharmacy(...)
        @pytest.fixture
        def simulator(self): return MyPharmacyTestStock(...)   # see `PharmacySimulator`

Each test stocks herbs under fresh names, so the suite can run against a shared test pharmacy.
"""

from __future__ import annotations

import uuid
from typing import Protocol

import pytest

from activities.adapters.errors import AdapterRefusal
from activities.adapters.pharmacy import Pharmacy
from models.prescription import RxItem


class PharmacySimulator(Protocol):
    """Shelf access in the pharmacy's test environment."""

    async def set_stock(self, herb: str, grams: int) -> None:
        """Make `grams` of `herb` available (creating the herb if needed)."""
        ...

    async def stock_of(self, herb: str) -> int:
        """Grams of `herb` on the shelf now."""
        ...


def _herb(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def _key() -> str:
    return f"key-{uuid.uuid4().hex}"


class PharmacyContract:
    def test_implements_protocol(self, adapter: Pharmacy) -> None:
        assert isinstance(adapter, Pharmacy)

    async def test_check_stock_sums_repeated_herbs(self, adapter: Pharmacy, simulator: PharmacySimulator) -> None:
        huangqi, gancao = _herb("黄芪"), _herb("甘草")
        await simulator.set_stock(huangqi, 50)
        await simulator.set_stock(gancao, 100)
        items = [RxItem(herb=huangqi, dose_g=10), RxItem(herb=gancao, dose_g=5), RxItem(herb=huangqi, dose_g=10)]
        shortages = await adapter.check_stock(items=items, doses=3)
        assert [(s.herb, s.needed_g, s.available_g) for s in shortages] == [(huangqi, 60, 50)]
        assert await adapter.check_stock(items=items, doses=2) == []

    async def test_unknown_herb_is_short(self, adapter: Pharmacy) -> None:
        missing = _herb("不存在")
        shortages = await adapter.check_stock(items=[RxItem(herb=missing, dose_g=3)], doses=1)
        assert [(s.herb, s.available_g) for s in shortages] == [(missing, 0)]

    async def test_submit_takes_stock_once_per_key(self, adapter: Pharmacy, simulator: PharmacySimulator) -> None:
        danggui, baizhu = _herb("当归"), _herb("白术")
        await simulator.set_stock(danggui, 100)
        await simulator.set_stock(baizhu, 100)
        items = [RxItem(herb=danggui, dose_g=10), RxItem(herb=baizhu, dose_g=5)]
        key, rx = _key(), f"rx-{uuid.uuid4().hex[:12]}"
        first = await adapter.submit_order(idempotency_key=key, prescription_id=rx, items=items, doses=3)
        again = await adapter.submit_order(idempotency_key=key, prescription_id=rx, items=items, doses=3)
        assert first.order_no and again.order_no == first.order_no
        assert (await simulator.stock_of(danggui), await simulator.stock_of(baizhu)) == (70, 85)

    async def test_short_order_is_refused_and_takes_nothing(
        self, adapter: Pharmacy, simulator: PharmacySimulator
    ) -> None:
        plenty, scarce = _herb("茯苓"), _herb("人参")
        await simulator.set_stock(plenty, 1_000)
        await simulator.set_stock(scarce, 10)
        items = [RxItem(herb=plenty, dose_g=10), RxItem(herb=scarce, dose_g=6)]
        with pytest.raises(AdapterRefusal) as refused:
            await adapter.submit_order(
                idempotency_key=_key(), prescription_id=f"rx-{uuid.uuid4().hex[:12]}", items=items, doses=2
            )
        assert refused.value.code == "STOCK_SHORT"
        assert (await simulator.stock_of(plenty), await simulator.stock_of(scarce)) == (1_000, 10)

    async def test_cancel_restores_stock_once(self, adapter: Pharmacy, simulator: PharmacySimulator) -> None:
        chuanxiong = _herb("川芎")
        await simulator.set_stock(chuanxiong, 100)
        order = await adapter.submit_order(
            idempotency_key=_key(),
            prescription_id=f"rx-{uuid.uuid4().hex[:12]}",
            items=[RxItem(herb=chuanxiong, dose_g=12)],
            doses=5,
        )
        assert await simulator.stock_of(chuanxiong) == 40
        cancel_key = _key()
        await adapter.cancel_order(idempotency_key=cancel_key, order_no=order.order_no)
        await adapter.cancel_order(idempotency_key=cancel_key, order_no=order.order_no)
        await adapter.cancel_order(idempotency_key=_key(), order_no=order.order_no)
        assert await simulator.stock_of(chuanxiong) == 100

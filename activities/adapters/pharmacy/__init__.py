"""A dispensing pharmacy (the hospital's own, or a partner's)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from models.fulfilment import PharmacyOrder, StockShortage
from models.prescription import RxItem


@runtime_checkable
class Pharmacy(Protocol):
    async def check_stock(self, *, items: list[RxItem], doses: int) -> list[StockShortage]: ...

    async def submit_order(
        self, *, idempotency_key: str, prescription_id: str, items: list[RxItem], doses: int
    ) -> PharmacyOrder:
        """Reserve stock and queue the prescription for dispensing. Raises `AdapterRefusal` when stock is short."""
        ...

    async def cancel_order(self, *, idempotency_key: str, order_no: str) -> None: ...

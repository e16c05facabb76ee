"""A dispensing pharmacy (the hospital's own, or a partner's).

The hospital's own pharmacy is the implementation `QIHUANG_ADAPTER_PHARMACY` names. Each partner pharmacy (社会药房,
configured by admins) names its implementation too; that one is built with the partner's id as well,
`cls(sessions, settings, pharmacy_id=...)`, so one implementation can serve several partners.
"""

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

"""Sandbox pharmacy: dispenses from the hospital's own `herbs` stock (grams), or, made for a partner pharmacy
(`pharmacy_id`), from that partner's shelves in `sandbox_partner_stock`.

Stock is taken by one conditional UPDATE per herb (`… WHERE stock_g >= need`), all inside one transaction, so
concurrent orders can never oversell and an order that is short anywhere takes nothing at all.
"""

from __future__ import annotations

import math
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.errors import AdapterRefusal
from activities.adapters.sandbox import CALLS, SandboxRecorder, recorder_for, table
from core.settings import Settings
from models.fulfilment import PharmacyOrder, StockShortage
from models.prescription import RxItem
from models.tables.catalogue import Herb
from models.tables.pharmacies import SandboxPartnerStock

SYSTEM = "pharmacy"
NAME = "sandbox"

_herbs = table(Herb)
_partner = table(SandboxPartnerStock)


class StockShort(AdapterRefusal):
    """`STOCK_SHORT` refusal that also carries the shortages, for callers that want to show them."""

    def __init__(self, shortages: list[StockShortage]) -> None:
        listed = "；".join(f"{s.herb} 需 {s.needed_g:g} 克，现有 {s.available_g:g} 克" for s in shortages)
        super().__init__("STOCK_SHORT", f"饮片库存不足：{listed}")
        self.shortages = shortages


def needs(items: list[RxItem], doses: int) -> dict[str, Decimal]:
    """Grams needed per herb for all doses, summed over repeated items, in order of first appearance.

    Decimal from the float's shortest repr, so 0.1 g x 3 doses is exactly 0.3 g, not 0.30000000000000004.
    """
    total: dict[str, Decimal] = {}
    for item in items:
        total[item.herb] = total.get(item.herb, Decimal(0)) + Decimal(repr(item.dose_g)) * doses
    return total


def whole_grams(needed: Decimal) -> int:
    # Stock is whole grams: a fraction of a gram still takes the whole gram.
    return math.ceil(needed)


class SandboxPharmacy:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: Settings, pharmacy_id: str | None = None
    ) -> None:
        self._sessions = sessions
        self._recorder = recorder_for(sessions, settings)
        # Orders name the pharmacy that took them, so one pharmacy never cancels (and restocks) another's order.
        self._name = NAME if pharmacy_id is None else f"partner:{pharmacy_id}"
        self._partner = pharmacy_id
        # The shelf: the table, its herb and grams columns, and the rows of this pharmacy in it.
        self._scope: tuple[ColumnElement[bool], ...] = ()
        if pharmacy_id is None:
            self._table, self._herb, self._grams = _herbs, _herbs.c.name, _herbs.c.stock_g
        else:
            self._table, self._herb, self._grams = _partner, _partner.c.herb, _partner.c.stock_g
            self._scope = (_partner.c.pharmacy_id == pharmacy_id,)

    async def check_stock(self, *, items: list[RxItem], doses: int) -> list[StockShortage]:
        await self._recorder.gate(SYSTEM, "check_stock", ",".join(sorted({i.herb for i in items})))
        wanted = needs(items, doses)
        async with self._sessions() as session:
            rows = await session.execute(select(self._herb, self._grams).where(self._herb.in_(wanted), *self._scope))
            stock = {name: grams for name, grams in rows.all()}
        return [
            StockShortage(herb=herb, needed_g=float(need), available_g=float(stock.get(herb, 0)))
            for herb, need in wanted.items()
            if stock.get(herb, 0) < need
        ]

    async def submit_order(
        self, *, idempotency_key: str, prescription_id: str, items: list[RxItem], doses: int
    ) -> PharmacyOrder:
        request = {
            "prescription_id": prescription_id,
            "items": [item.model_dump(mode="json") for item in items],
            "doses": doses,
        }

        async def perform(session: AsyncSession) -> dict[str, Any]:
            wanted = needs(items, doses)
            taken: dict[str, int] = {}
            shortages: list[StockShortage] = []
            # Sorted, so concurrent orders lock herb rows in one order and cannot deadlock each other.
            for herb in sorted(wanted):
                grams = whole_grams(wanted[herb])
                left = await session.scalar(
                    update(self._table)
                    .where(self._herb == herb, self._grams >= grams, *self._scope)
                    .values({self._grams.name: self._grams - grams})
                    .returning(self._grams)
                )
                if left is not None:
                    taken[herb] = grams
                    continue
                available = await session.scalar(select(self._grams).where(self._herb == herb, *self._scope))
                shortages.append(StockShortage(herb=herb, needed_g=float(wanted[herb]), available_g=available or 0))
            if shortages:
                raise StockShort(shortages)  # rolls back the herbs already taken in this transaction
            # `taken` is kept in the record so a cancel restores exactly what was taken.
            return {"order_no": f"SBPH{uuid.uuid4().hex[:16].upper()}", "pharmacy": self._name, "taken": taken}

        response = await self._recorder.once(SYSTEM, "submit_order", idempotency_key, request, perform)
        return PharmacyOrder(order_no=response["order_no"], pharmacy=response["pharmacy"])

    async def cancel_order(self, *, idempotency_key: str, order_no: str) -> None:
        async def perform(session: AsyncSession) -> dict[str, Any]:
            submitted = await session.scalar(
                select(CALLS.c.response).where(
                    CALLS.c.system == SYSTEM,
                    CALLS.c.operation == "submit_order",
                    CALLS.c.response["order_no"].astext == order_no,
                    CALLS.c.response["pharmacy"].astext == self._name,
                )
            )
            if submitted is None:
                raise AdapterRefusal("ORDER_NOT_FOUND", "药房订单不存在")
            # Restore once per order, even when two different keys cancel the same order.
            restored = await SandboxRecorder.mark_once(session, SYSTEM, "restock", order_no)
            if restored:
                for herb, grams in sorted(submitted["taken"].items()):
                    await session.execute(
                        update(self._table)
                        .where(self._herb == herb, *self._scope)
                        .values({self._grams.name: self._grams + grams})
                    )
            return {"order_no": order_no, "restored": restored}

        await self._recorder.once(SYSTEM, "cancel_order", idempotency_key, {"order_no": order_no}, perform)

    # --- simulator hooks (tests and the demo seed) -------------------------------------------------------------------

    async def set_stock(self, herb: str, grams: int) -> None:
        """Put `grams` of `herb` on the shelf (for the hospital, creating the herb with price 0 if the catalogue
        lacks it)."""
        if self._partner is None:
            statement = (
                insert(_herbs)
                .values(name=herb, pinyin="", price_fen_per_100g=0, stock_g=grams)
                .on_conflict_do_update(index_elements=["name"], set_={"stock_g": grams})
            )
        else:
            statement = (
                insert(_partner)
                .values(pharmacy_id=self._partner, herb=herb, stock_g=grams)
                .on_conflict_do_update(index_elements=["pharmacy_id", "herb"], set_={"stock_g": grams})
            )
        async with self._sessions() as session, session.begin():
            await session.execute(statement)

    async def stock_of(self, herb: str) -> int:
        async with self._sessions() as session:
            return int(await session.scalar(select(self._grams).where(self._herb == herb, *self._scope)) or 0)

"""Where a paid prescription's medicine is, for refund requests (8.4.2): before it leaves the pharmacy the patient may
ask for a refund, which withdraws the pharmacy order; after, only a special refund is possible."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from models.fulfilment import FulfilmentStage
from models.refund_request import DispatchStatus
from models.tables import Fulfilment

_WITHDRAWN = FulfilmentStage.FAILED.value


def has_left(stage: str | None, waybill_no: str | None) -> bool:
    """Shipped (a waybill exists) or handed over at a counter (signed for): the medicine is out of the pharmacy."""
    return waybill_no is not None or stage in (FulfilmentStage.SHIPPED.value, FulfilmentStage.SIGNED.value)


async def dispatch_status(session: AsyncSession, prescription_id: str) -> DispatchStatus:
    row = (
        await session.execute(
            select(
                col(Fulfilment.stage),
                col(Fulfilment.waybill_no),
                col(Fulfilment.pharmacy_order_no),
                col(Fulfilment.pharmacy_id),
            ).where(col(Fulfilment.prescription_id) == prescription_id)
        )
    ).first()
    if row is None:
        return DispatchStatus(left=False)
    return DispatchStatus(
        left=has_left(row.stage, row.waybill_no), stage=row.stage, order_no=row.pharmacy_order_no,
        pharmacy_id=row.pharmacy_id,
    )  # fmt: skip


class RefundRequestActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def dispatch_status(self, prescription_id: str) -> DispatchStatus:
        async with self._sessions() as session:
            return await dispatch_status(session, prescription_id)

    @activity.defn
    async def withdraw_fulfilment(self, prescription_id: str) -> DispatchStatus:
        """Mark the fulfilment withdrawn, unless the medicine left meanwhile; answers with where it was."""
        async with self._sessions() as session, session.begin():
            found = await dispatch_status(session, prescription_id)
            if not found.left and found.stage not in (None, _WITHDRAWN):
                await session.execute(
                    update(Fulfilment)
                    .where(col(Fulfilment.prescription_id) == prescription_id, col(Fulfilment.waybill_no).is_(None))
                    .values(stage=_WITHDRAWN, updated_at=datetime.now(UTC))
                )
            return found

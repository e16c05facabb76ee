"""Drug catalogue steps (8.6.2): publish an approved change in one transaction, keeping the entry as it was before;
or record a rejection. Both happen once: a retried step finds the change decided and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.errors import business_error
from models.catalog import CatalogDecision, ChangeKind, ChangeStatus, HerbFields
from models.tables import CatalogChange, Herb

_DICTIONARY = ("code", "spec", "unit", "price_fen_per_100g", "control_class", "transport_note", "active")


def entry(herb: Herb) -> dict[str, Any]:
    """A catalogue entry's dictionary data, as a change records it."""
    return {field: getattr(herb, field) for field in _DICTIONARY}


class CatalogActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def publish_change(self, change_id: str, decision: CatalogDecision) -> None:
        try:
            async with self._sessions() as session, session.begin():
                change = await self._pending(session, change_id)
                if change is None:
                    return
                herb = await session.get(Herb, change.herb_name, with_for_update=True)
                change.before = entry(herb) if herb is not None else None
                self._apply(session, ChangeKind(change.kind), change.herb_name, herb, HerbFields(**change.fields))
                self._decide(change, ChangeStatus.PUBLISHED, decision)
        except IntegrityError:
            raise business_error("CATALOG_CONFLICT", "药品代码已被其他饮片使用，请修改后重新提交") from None

    @activity.defn
    async def reject_change(self, change_id: str, decision: CatalogDecision) -> None:
        async with self._sessions() as session, session.begin():
            change = await self._pending(session, change_id)
            if change is not None:
                self._decide(change, ChangeStatus.REJECTED, decision)

    @staticmethod
    async def _pending(session: AsyncSession, change_id: str) -> CatalogChange | None:
        change = await session.scalar(select(CatalogChange).where(col(CatalogChange.id) == change_id).with_for_update())
        if change is None:
            raise business_error("CHANGE_UNKNOWN", "药品目录变更不存在")
        return change if change.status == ChangeStatus.PENDING else None

    @staticmethod
    def _apply(session: AsyncSession, kind: ChangeKind, name: str, herb: Herb | None, fields: HerbFields) -> None:
        if kind is ChangeKind.ADD:
            if herb is not None:
                raise business_error("CATALOG_CONFLICT", f"药品目录中已有{name}")
            assert fields.price_fen_per_100g is not None  # the API requires it for an addition
            session.add(Herb(name=name, stock_g=0, **fields.model_dump(exclude_none=True)))
            return
        if herb is None:
            raise business_error("CATALOG_CONFLICT", f"药品目录中没有{name}")
        if kind is ChangeKind.UPDATE:
            for field, value in fields.model_dump(exclude_none=True).items():
                setattr(herb, field, value)
        else:
            herb.active = kind is ChangeKind.ENABLE

    @staticmethod
    def _decide(change: CatalogChange, status: ChangeStatus, decision: CatalogDecision) -> None:
        change.status = status
        change.decided_by, change.decided_at = decision.approver_user_id, datetime.now(UTC)
        change.note = decision.note or None

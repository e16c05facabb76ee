"""The duty check's database step: who is on duty now and, when nobody is, since when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from models.duty import DutyStatus
from models.tables import PharmacistDuty


class DutyActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def duty_status(self, opened_at: datetime) -> DutyStatus:
        """Pharmacists signed in now; with none, the gap runs from the last sign-out, or from `opened_at` when that
        was earlier (a sign-out last night does not make this morning's gap older)."""
        async with self._sessions() as session:
            on_duty = await session.scalar(
                select(func.count()).select_from(PharmacistDuty).where(col(PharmacistDuty.ended_at).is_(None))
            )
            if on_duty:
                return DutyStatus(on_duty=on_duty)
            last_out = await session.scalar(select(func.max(col(PharmacistDuty.ended_at))))
        return DutyStatus(on_duty=0, uncovered_since=max(opened_at, last_out) if last_out else opened_at)

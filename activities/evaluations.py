"""Evaluation follow-up steps (8.6.7 c): record what the staff did about a low rating."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from models.evaluation import HandleEvaluation
from models.tables import Evaluation


class EvaluationActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def record_handling(self, evaluation_id: str, handling: HandleEvaluation) -> None:
        """Once: a retried step finds it handled and changes nothing."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Evaluation)
                .where(col(Evaluation.id) == evaluation_id, col(Evaluation.handling) == "pending")
                .values(
                    handling="handled",
                    handled_by=handling.handled_by,
                    handled_at=datetime.now(UTC),
                    handling_note=handling.note,
                )
            )

"""Complaint steps (8.6.7 e): the complaint's row is the read model the patient and the admins list; the flow records
its escalation and its answer there. Each write is guarded by what it changes, so a retried step changes nothing
twice: the first escalation time and the first answer stay."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from models.complaint import ComplaintResponse, ComplaintStatus
from models.tables import Complaint


class ComplaintActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def record_escalation(self, complaint_id: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Complaint)
                .where(col(Complaint.id) == complaint_id, col(Complaint.escalated_at).is_(None))
                .values(escalated_at=datetime.now(UTC))
            )

    @activity.defn
    async def record_response(self, complaint_id: str, answer: ComplaintResponse, responded_at: datetime) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Complaint)
                .where(col(Complaint.id) == complaint_id, col(Complaint.status) == ComplaintStatus.OPEN.value)
                .values(
                    status=ComplaintStatus.ANSWERED.value,
                    response=answer.response,
                    responded_by=answer.responder_id,
                    responded_at=responded_at,
                )
            )

"""Pharmacists' duty sign-in and sign-out (8.3.1.1): one open period per pharmacist, decided by PostgreSQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from models.tables import Pharmacist, PharmacistDuty

_OPEN = col(PharmacistDuty.ended_at).is_(None)


async def open_period(session: AsyncSession, pharmacist_id: str) -> PharmacistDuty | None:
    return (
        await session.execute(select(PharmacistDuty).where(col(PharmacistDuty.pharmacist_id) == pharmacist_id, _OPEN))
    ).scalar_one_or_none()


async def sign_in(session: AsyncSession, pharmacist_id: str) -> bool:
    """Open a period unless one is open already (a repeated or racing sign-in); True when this call opened it."""
    opened = await session.execute(
        insert(PharmacistDuty)
        .values(pharmacist_id=pharmacist_id)
        .on_conflict_do_nothing(index_elements=["pharmacist_id"], index_where=text("ended_at IS NULL"))
        .returning(col(PharmacistDuty.id))
    )
    return opened.first() is not None


async def sign_out(session: AsyncSession, pharmacist_id: str, at: datetime) -> bool:
    """Close the open period, if any; True when this call closed it."""
    closed = await session.execute(
        update(PharmacistDuty)
        .where(col(PharmacistDuty.pharmacist_id) == pharmacist_id, _OPEN)
        .values(ended_at=at)
        .returning(col(PharmacistDuty.id))
    )
    return closed.first() is not None


async def on_duty(session: AsyncSession) -> list[tuple[Pharmacist, datetime]]:
    """Pharmacists signed in now, longest on duty first, with when they signed in."""
    rows = await session.execute(
        select(Pharmacist, col(PharmacistDuty.started_at))
        .join(PharmacistDuty, col(PharmacistDuty.pharmacist_id) == col(Pharmacist.id))
        .where(_OPEN)
        .order_by(col(PharmacistDuty.started_at))
    )
    return [(pharmacist, started_at) for pharmacist, started_at in rows.all()]

"""A user's in-app notices. Every query is scoped to the user, so no one reaches another's notices."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from models.tables import Notification


async def list_notifications(
    session: AsyncSession, user_id: str, *, limit: int, offset: int
) -> tuple[Sequence[Notification], int, int]:
    """One page, newest first, with the user's total and unread counts."""
    items = (
        (
            await session.execute(
                select(Notification)
                .where(col(Notification.user_id) == user_id)
                .order_by(col(Notification.created_at).desc(), col(Notification.id).desc())
                .limit(limit)
                .offset(offset)
            )
        )
        .scalars()
        .all()
    )
    total, unread = (
        await session.execute(
            select(func.count(), func.count().filter(col(Notification.read_at).is_(None))).where(
                col(Notification.user_id) == user_id
            )
        )
    ).one()
    return items, total, unread


async def mark_read(session: AsyncSession, user_id: str, notification_id: int, now: datetime) -> Notification | None:
    """Mark one of the user's notices read (the first read time stays); None if the user has no such notice."""
    notification = (
        await session.execute(
            update(Notification)
            .where(col(Notification.id) == notification_id, col(Notification.user_id) == user_id)
            .values(read_at=func.coalesce(Notification.read_at, now))
            .returning(Notification)
        )
    ).scalar_one_or_none()
    await session.commit()
    return notification

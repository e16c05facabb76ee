"""The no-show blacklist (8.6.8): `no_show_limit` no-shows within `no_show_window_days` block booking for
`no_show_block_days`; an admin lifts a block after an appeal.

The rule is evaluated when it matters, at booking (and when the patient looks at their standing), so no scheduler is
needed. The block starts when the rule was met, at the no-show that reached the limit, whenever it is evaluated.
Each block uses up the no-shows before it: only no-shows recorded after the latest block started (or, for a lifted
block, after it was lifted) count toward the next one, so a block that ends or is lifted is not re-created from the
same old no-shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from fastapi import Request
from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import Actor
from api.errors import Problem
from api.hospital_time import SHANGHAI
from api.services.audit import audit
from core.settings import Settings
from models.tables import BookingBlock, NoShow, Patient

SUBJECT = "booking_block"


def hospital_time(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y年%m月%d日 %H:%M")


def blocked_problem(blocked_until: datetime) -> Problem:
    return Problem(
        403,
        "BOOKING_BLOCKED",
        "暂停预约挂号",
        f"因多次预约后未按时就诊，您在 {hospital_time(blocked_until)}（北京时间）之前不能预约挂号。"
        "如因特殊情况爽约，可联系客服申诉。",
        blocked_until=blocked_until.isoformat(),
    )


def _is_active(now: datetime) -> ColumnElement[bool]:
    return col(BookingBlock.lifted_at).is_(None) & (col(BookingBlock.blocked_until) > now)


async def active_block(session: AsyncSession, patient_id: str, now: datetime) -> BookingBlock | None:
    """The patient's block in force now (the one ending last, should several overlap)."""
    return (
        await session.execute(
            select(BookingBlock)
            .where(col(BookingBlock.patient_id) == patient_id, _is_active(now))
            .order_by(col(BookingBlock.blocked_until).desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def _counted_no_shows(session: AsyncSession, settings: Settings, patient_id: str, now: datetime) -> list[NoShow]:
    """The first `no_show_limit` no-shows that count toward a new block, oldest first."""
    used_up = (
        await session.execute(
            select(func.max(func.coalesce(col(BookingBlock.lifted_at), col(BookingBlock.blocked_from)))).where(
                col(BookingBlock.patient_id) == patient_id
            )
        )
    ).scalar()
    since = now - timedelta(days=settings.no_show_window_days)
    if used_up is not None and used_up > since:
        since = used_up
    rows = await session.execute(
        select(NoShow)
        .where(col(NoShow.patient_id) == patient_id, col(NoShow.recorded_at) > since)
        .order_by(col(NoShow.recorded_at))
        .limit(settings.no_show_limit)
    )
    return list(rows.scalars())


def _new_block(settings: Settings, patient_id: str, no_shows: Sequence[NoShow]) -> BookingBlock:
    started = no_shows[-1].recorded_at
    return BookingBlock(
        patient_id=patient_id,
        blocked_from=started,
        blocked_until=started + timedelta(days=settings.no_show_block_days),
        reason=f"{settings.no_show_window_days} 天内爽约 {len(no_shows)} 次，暂停预约挂号 {settings.no_show_block_days} 天",
        rule={
            "no_show_limit": settings.no_show_limit,
            "window_days": settings.no_show_window_days,
            "block_days": settings.no_show_block_days,
            "visit_ids": [no_show.visit_id for no_show in no_shows],
        },
    )


async def enforce_no_show_rule(session: AsyncSession, settings: Settings, patient_id: str) -> BookingBlock | None:
    """Record every block the rule calls for and return the one in force now, if any. Commits.

    Idempotent and safe under concurrency: the patient's row is locked while the rule is evaluated, so two requests
    of the same patient never record the same block twice.
    """
    now = datetime.now(UTC)
    await session.execute(select(col(Patient.id)).where(col(Patient.id) == patient_id).with_for_update(key_share=True))
    block = await active_block(session, patient_id, now)
    # Each recorded block uses up `no_show_limit` no-shows, so this ends; a block whose time already ran out (the
    # patient did not try to book meanwhile) is still recorded, as history and so its no-shows stop counting.
    while block is None:
        no_shows = await _counted_no_shows(session, settings, patient_id, now)
        if len(no_shows) < settings.no_show_limit:
            break
        recorded = _new_block(settings, patient_id, no_shows)
        session.add(recorded)
        await session.flush()
        audit(
            session,
            None,
            "booking_block.create",
            SUBJECT,
            str(recorded.id),
            reason=recorded.reason,
            detail={"patient_id": patient_id, **recorded.rule, "blocked_until": recorded.blocked_until.isoformat()},
        )
        if recorded.blocked_until > now:
            block = recorded
    await session.commit()
    return block


async def list_blocks(
    session: AsyncSession, *, patient_id: str | None, active: bool | None, limit: int, offset: int, now: datetime
) -> tuple[list[BookingBlock], int]:
    """Newest first, with the total count of the filtered list."""
    conditions: list[ColumnElement[bool]] = []
    if patient_id is not None:
        conditions.append(col(BookingBlock.patient_id) == patient_id)
    if active is not None:
        conditions.append(_is_active(now) if active else ~_is_active(now))
    items = await session.execute(
        select(BookingBlock)
        .where(*conditions)
        .order_by(col(BookingBlock.blocked_from).desc(), col(BookingBlock.id).desc())
        .limit(limit)
        .offset(offset)
    )
    total = (await session.execute(select(func.count()).select_from(BookingBlock).where(*conditions))).scalar_one()
    return list(items.scalars()), total


async def lift_block(session: AsyncSession, actor: Actor, block_id: int, reason: str, request: Request) -> BookingBlock:
    """Lift a block in force, recording who, when and why; audited in the same transaction."""
    now = datetime.now(UTC)
    lifted = (
        await session.execute(
            update(BookingBlock)
            .where(col(BookingBlock.id) == block_id, _is_active(now))
            .values(lifted_at=now, lifted_by=actor.user_id, lift_reason=reason)
            .returning(BookingBlock)
        )
    ).scalar_one_or_none()
    if lifted is None:
        exists = await session.get(BookingBlock, block_id)
        if exists is None:
            raise Problem(404, "NOT_FOUND", "请求的资源不存在", "该预约限制记录不存在。")
        raise Problem(409, "BOOKING_BLOCK_NOT_ACTIVE", "预约限制已失效", "该预约限制已解除或已到期，无需再解除。")
    audit(
        session,
        actor,
        "booking_block.lift",
        SUBJECT,
        str(block_id),
        reason=reason,
        detail={"patient_id": lifted.patient_id, "blocked_until": lifted.blocked_until.isoformat()},
        request=request,
    )
    await session.commit()
    return lifted

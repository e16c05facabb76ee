"""Exam orders for the API: who may see one, the catalogue lines an order is priced from, a day's places, the lists.

Everything with a lifecycle goes to the order's ExamOrder flow; this module only reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import Actor
from api.errors import Problem
from api.queries.listing import own_rows
from api.schemas.exams import ExamDayOut, ExamItemOut, ExamOrderSummary
from api.services.access import treats
from core.settings import Settings
from models.common import Role
from models.exam import EXAM_END_STAGES, ExamItemStatus, ExamLine, ExamOrderStage, ExamWindows
from models.tables import ExamCapacity, ExamCatalogueEntry, ExamItem, ExamOrder

# How far ahead a day's places may be listed.
AVAILABILITY_HORIZON_DAYS = 366
AVAILABILITY_MAX_DAYS = 31


async def visible_exam_order(session: AsyncSession, actor: Actor, order_id: str) -> ExamOrder:
    """The order, for its patient, the doctors of its visit and administrators; 404 for anyone else."""
    order = await session.get(ExamOrder, order_id)
    if order is None or not (
        actor.role is Role.ADMIN
        or (actor.role is Role.PATIENT and order.patient_id == actor.ref)
        or (
            actor.role is Role.DOCTOR
            and (order.doctor_id == actor.ref or await treats(session, order.visit_id, actor.ref))
        )
    ):
        raise Problem(404, "NOT_FOUND", "未找到", "检查单不存在")
    return order


async def refuse_if_ended(session: AsyncSession, order: ExamOrder, item_nos: Sequence[int] = ()) -> None:
    """An order whose flow ended takes no more messages (Temporal would answer that the flow is gone): say why, from
    the read model the flow wrote before it ended, as its own refusals would."""
    if ExamOrderStage(order.stage) not in EXAM_END_STAGES:
        return
    query = select(col(ExamItem.status)).where(col(ExamItem.order_id) == order.id)
    if item_nos:
        query = query.where(col(ExamItem.item_no).in_(list(item_nos)))
    statuses = set((await session.execute(query)).scalars())
    if ExamItemStatus.PERFORMED.value in statuses:
        raise Problem(409, "EXAM_PERFORMED", "检查已执行", "检查已执行，不能取消或退费")
    if item_nos and statuses == {ExamItemStatus.CANCELLED.value}:
        raise Problem(409, "EXAM_CANCELLED", "检查已取消", "检查已取消")
    raise Problem(409, "EXAM_ORDER_CLOSED", "检查单已结束", "检查单已结束，不能再操作")


async def catalogue_entry(session: AsyncSession, code: str) -> ExamCatalogueEntry:
    entry = await session.get(ExamCatalogueEntry, code)
    if entry is None or not entry.active:
        raise Problem(404, "NOT_FOUND", "未找到", f"检查项目 {code} 不存在")
    return entry


async def priced_lines(session: AsyncSession, codes: list[str]) -> list[ExamLine]:
    """The order's exams as the catalogue has them now, numbered in the order the doctor listed them."""
    repeated = sorted({code for code in codes if codes.count(code) > 1})
    if repeated:
        raise Problem(
            422, "EXAM_DUPLICATE", "检查项目重复", f"同一检查项目只能开具一次：{'、'.join(repeated)}", codes=repeated
        )
    rows = await session.execute(
        select(ExamCatalogueEntry).where(col(ExamCatalogueEntry.code).in_(codes), col(ExamCatalogueEntry.active))
    )
    found = {entry.code: entry for entry in rows.scalars()}
    unknown = [code for code in codes if code not in found]
    if unknown:
        raise Problem(
            422, "EXAM_UNKNOWN", "检查项目不存在", f"检查目录中没有以下项目：{'、'.join(unknown)}", codes=unknown
        )
    return [
        ExamLine(
            item_no=number,
            code=code,
            name=found[code].name,
            price_fen=found[code].price_fen,
            needs_booking=found[code].needs_booking,
            department=found[code].department,
            campus=found[code].campus,
            preparation=found[code].preparation,
        )
        for number, code in enumerate(codes, start=1)
    ]


def windows(settings: Settings) -> ExamWindows:
    return ExamWindows(
        pay_window_s=settings.exam_pay_window_s,
        valid_s=settings.exam_valid_days * 24 * 3600,
        booking_days=settings.exam_booking_days,
    )


async def availability(
    session: AsyncSession, entry: ExamCatalogueEntry, start: date, days: int, today: date
) -> list[ExamDayOut]:
    """Places left per day, from `start` for `days` days (a day nobody booked yet has the catalogue's capacity)."""
    if not entry.needs_booking:
        raise Problem(
            409, "EXAM_NO_BOOKING", "该检查无需预约", f"{entry.name}无需预约，缴费后按指引到{entry.department}检查"
        )
    if not today <= start <= today + timedelta(days=AVAILABILITY_HORIZON_DAYS):
        raise Problem(422, "EXAM_DAY_OUT_OF_RANGE", "日期超出范围", f"请查询 {today.isoformat()} 起一年内的日期")
    end = start + timedelta(days=days)
    rows = await session.execute(
        select(ExamCapacity).where(
            col(ExamCapacity.exam_code) == entry.code, col(ExamCapacity.day) >= start, col(ExamCapacity.day) < end
        )
    )
    held = {row.day: row for row in rows.scalars()}
    answer = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        row = held.get(day)
        capacity = row.capacity if row else entry.daily_capacity
        booked = row.booked if row else 0
        answer.append(ExamDayOut(day=day, capacity=capacity, booked=booked, remaining=max(capacity - booked, 0)))
    return answer


async def list_orders(
    session: AsyncSession, actor: Actor, stage: ExamOrderStage | None, limit: int, offset: int
) -> list[ExamOrderSummary]:
    """Patients see their own orders, doctors the ones they ordered, administrators all; newest first."""
    query = own_rows(
        select(ExamOrder).order_by(col(ExamOrder.created_at).desc(), col(ExamOrder.id)).limit(limit).offset(offset),
        actor,
        col(ExamOrder.patient_id),
        col(ExamOrder.doctor_id),
    )
    if query is None:
        return []
    if stage is not None:
        query = query.where(col(ExamOrder.stage) == stage.value)
    orders = list((await session.execute(query)).scalars())
    items: dict[str, list[ExamItemOut]] = {order.id: [] for order in orders}
    if orders:
        rows = await session.execute(
            select(ExamItem).where(col(ExamItem.order_id).in_(list(items))).order_by(col(ExamItem.item_no))
        )
        for item in rows.scalars():
            items[item.order_id].append(
                ExamItemOut(
                    item_no=item.item_no,
                    code=item.exam_code,
                    name=item.name,
                    price_fen=item.price_fen,
                    needs_booking=item.needs_booking,
                    department=item.department,
                    campus=item.campus,
                    status=ExamItemStatus(item.status),
                    booked_day=item.booked_day,
                    performed_at=item.performed_at,
                    refund_id=item.refund_id,
                    cancel_reason=item.cancel_reason,
                )
            )
    return [
        ExamOrderSummary(
            order_id=order.id,
            visit_id=order.visit_id,
            patient_id=order.patient_id,
            doctor_id=order.doctor_id,
            stage=ExamOrderStage(order.stage),
            total_fen=order.total_fen,
            refunded_fen=order.refunded_fen,
            bill_id=order.bill_id,
            note=order.note,
            valid_until=order.valid_until,
            created_at=order.created_at,
            items=items[order.id],
        )
        for order in orders
    ]

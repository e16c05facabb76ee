"""Exam steps against PostgreSQL: a day's places are handed out one by one however many patients ask at once, a retried
booking takes nothing twice, moving a booking gives the old day back, a cancelled exam's place is free again, and the
read model keeps the day the booking step wrote."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError

from activities.exams import ExamActivities
from models.exam import ExamBooking, ExamItemStatus, ExamLine, ExamOrderInput, ExamWindows, ordered_state
from models.tables import ExamCapacity, ExamCatalogueEntry, ExamItem
from tests.api.consult_helpers import make_consult_visit

DAY = date(2030, 5, 20)


async def make_exam(
    sessions: async_sessionmaker[AsyncSession], capacity: int, *, needs_booking: bool = True, price_fen: int = 3000
) -> ExamCatalogueEntry:
    entry = ExamCatalogueEntry(
        code=f"EX-{uuid.uuid4().hex[:10]}",
        name="舌象仪检测",
        category="exam",
        price_fen=price_fen,
        department="中医诊断室",
        needs_booking=needs_booking,
        daily_capacity=capacity,
    )
    async with sessions() as session, session.begin():
        session.add(entry)
    return ExamCatalogueEntry.model_validate(entry.model_dump())


async def make_orders(
    sessions: async_sessionmaker[AsyncSession], exams: ExamActivities, entry: ExamCatalogueEntry, count: int
) -> list[ExamOrderInput]:
    """`count` orders of one exam each, recorded as the Visit flow records a new order."""
    visit = await make_consult_visit(sessions)
    line = ExamLine(
        item_no=1, code=entry.code, name=entry.name, price_fen=entry.price_fen, needs_booking=True,
        department=entry.department,
    )  # fmt: skip
    orders = []
    for number in range(count):
        order = ExamOrderInput(
            order_id=f"{visit.visit_id}-ex{number}",
            visit_id=visit.visit_id,
            patient_id=visit.patient_id,
            doctor_id=visit.doctor_id,
            lines=[line],
            channel="sandbox",
            windows=ExamWindows(pay_window_s=60, valid_s=3600, booking_days=14),
        )
        await exams.record_exam_order(order, ordered_state(order))
        orders.append(order)
    return orders


async def booked(sessions: async_sessionmaker[AsyncSession], code: str, day: date) -> int:
    async with sessions() as session:
        row = await session.get(ExamCapacity, (code, day))
    return row.booked if row else 0


async def held_day(sessions: async_sessionmaker[AsyncSession], order_id: str) -> date | None:
    async with sessions() as session:
        row = await session.get(ExamItem, (order_id, 1))
    assert row is not None
    return row.booked_day


async def test_a_day_never_gives_out_more_places_than_it_has(sessions) -> None:
    exams = ExamActivities(sessions)
    entry = await make_exam(sessions, capacity=3)
    orders = await make_orders(sessions, exams, entry, 10)

    async def attempt(order: ExamOrderInput) -> bool:
        try:
            await exams.book_exam_day(ExamBooking(order_id=order.order_id, item_no=1, code=entry.code, day=DAY))
        except ApplicationError as refusal:
            assert refusal.type == "EXAM_DAY_FULL" and refusal.non_retryable
            return False
        return True

    results = await asyncio.gather(*(attempt(order) for order in orders))
    assert sum(results) == 3
    assert await booked(sessions, entry.code, DAY) == 3
    holders = [order for order, won in zip(orders, results, strict=True) if won]
    assert [await held_day(sessions, order.order_id) for order in holders] == [DAY] * 3

    # A retried step for the day it already holds takes nothing more (and is not refused, though the day is full).
    await exams.book_exam_day(ExamBooking(order_id=holders[0].order_id, item_no=1, code=entry.code, day=DAY))
    assert await booked(sessions, entry.code, DAY) == 3


async def test_moving_and_cancelling_give_the_place_back(sessions) -> None:
    exams = ExamActivities(sessions)
    entry = await make_exam(sessions, capacity=1)
    first, second = await make_orders(sessions, exams, entry, 2)
    later = DAY + timedelta(days=1)

    await exams.book_exam_day(ExamBooking(order_id=first.order_id, item_no=1, code=entry.code, day=DAY))
    with pytest.raises(ApplicationError) as full:
        await exams.book_exam_day(ExamBooking(order_id=second.order_id, item_no=1, code=entry.code, day=DAY))
    assert full.value.type == "EXAM_DAY_FULL"
    # The first moves to the next day: its place on DAY is free for the second.
    await exams.book_exam_day(ExamBooking(order_id=first.order_id, item_no=1, code=entry.code, day=later))
    await exams.book_exam_day(ExamBooking(order_id=second.order_id, item_no=1, code=entry.code, day=DAY))
    assert (await booked(sessions, entry.code, DAY), await booked(sessions, entry.code, later)) == (1, 1)

    # Cancelled: the place is given back once, however often the step runs.
    for _ in range(2):
        await exams.release_exam_days(first.order_id, [1])
    assert await booked(sessions, entry.code, later) == 0
    assert await held_day(sessions, first.order_id) is None


async def test_recording_the_order_keeps_the_booked_day_and_updates_the_rest(sessions) -> None:
    exams = ExamActivities(sessions)
    entry = await make_exam(sessions, capacity=5)
    [order] = await make_orders(sessions, exams, entry, 1)
    await exams.book_exam_day(ExamBooking(order_id=order.order_id, item_no=1, code=entry.code, day=DAY))
    state = ordered_state(order)
    state.items[0].status = ExamItemStatus.BOOKED
    await exams.record_exam_order(order, state)
    async with sessions() as session:
        row = await session.get(ExamItem, (order.order_id, 1))
    assert row is not None and row.status == "booked" and row.booked_day == DAY


async def test_an_exam_not_in_any_order_is_not_booked(sessions) -> None:
    exams = ExamActivities(sessions)
    entry = await make_exam(sessions, capacity=5)
    with pytest.raises(ApplicationError) as missing:
        await exams.book_exam_day(ExamBooking(order_id="nowhere", item_no=1, code=entry.code, day=DAY))
    assert missing.value.type == "EXAM_NOT_FOUND"

"""Exam orders in PostgreSQL: the read model the ExamOrder flow keeps, and each exam's place in a day's capacity.

A place is taken by one conditional UPDATE of the day's count (`booked < capacity`), in the same transaction that
writes which day the exam holds, so a retried step takes nothing twice and two patients can never share the last place.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Date, Integer, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.errors import business_error
from models.exam import ExamBooking, ExamOrderInput, ExamOrderState
from models.tables import ExamCapacity, ExamCatalogueEntry, ExamItem, ExamOrder


class ExamActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def record_exam_order(self, order: ExamOrderInput, state: ExamOrderState) -> None:
        values: dict[str, Any] = {
            "stage": state.stage.value,
            "total_fen": state.total_fen,
            "refunded_fen": state.refunded_fen,
            "bill_id": state.bill_id,
            "paid_at": state.paid_at,
            "valid_until": state.valid_until,
            "end_reason": state.end_reason,
            "updated_at": datetime.now(UTC),
        }
        items = [
            {
                "order_id": order.order_id,
                "item_no": item.item_no,
                "exam_code": item.code,
                "name": item.name,
                "price_fen": item.price_fen,
                "needs_booking": item.needs_booking,
                "department": item.department,
                "campus": item.campus,
                "status": item.status.value,
                "performed_at": item.performed_at,
                "performed_by": item.performed_by,
                "refund_id": item.refund_id,
                "cancel_reason": item.cancel_reason,
            }
            for item in state.items
        ]
        changing = ("status", "performed_at", "performed_by", "refund_id", "cancel_reason")
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(ExamOrder)
                .values(
                    id=order.order_id,
                    visit_id=order.visit_id,
                    patient_id=order.patient_id,
                    doctor_id=order.doctor_id,
                    note=order.note,
                    **values,
                )
                .on_conflict_do_update(index_elements=["id"], set_=values)
            )
            statement = insert(ExamItem).values(items)
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["order_id", "item_no"], set_={name: statement.excluded[name] for name in changing}
                )
            )

    @activity.defn
    async def book_exam_day(self, booking: ExamBooking) -> None:
        """Hold a place on `booking.day` for the exam, giving back the place of the day it held before (if any).

        Refused with `EXAM_DAY_FULL` when the day has no place left. Asking again for the day it holds changes nothing.
        """
        async with self._sessions() as session, session.begin():
            held = (
                await session.execute(
                    select(col(ExamItem.booked_day))
                    .where(col(ExamItem.order_id) == booking.order_id, col(ExamItem.item_no) == booking.item_no)
                    .with_for_update()
                )
            ).one_or_none()
            if held is None:
                raise business_error("EXAM_NOT_FOUND", "检查项目不存在")
            before: date | None = held[0]
            if before == booking.day:
                return
            await session.execute(
                insert(ExamCapacity)
                .from_select(
                    ["exam_code", "day", "capacity", "booked"],
                    select(
                        col(ExamCatalogueEntry.code),
                        literal(booking.day, Date),
                        col(ExamCatalogueEntry.daily_capacity),
                        literal(0, Integer),
                    ).where(col(ExamCatalogueEntry.code) == booking.code),
                )
                .on_conflict_do_nothing(index_elements=["exam_code", "day"])
            )
            taken = (
                await session.execute(
                    update(ExamCapacity)
                    .where(
                        col(ExamCapacity.exam_code) == booking.code,
                        col(ExamCapacity.day) == booking.day,
                        col(ExamCapacity.booked) < col(ExamCapacity.capacity),
                    )
                    .values(booked=col(ExamCapacity.booked) + 1)
                    .returning(col(ExamCapacity.booked))
                )
            ).scalar()
            if taken is None:
                raise business_error("EXAM_DAY_FULL", f"{booking.day.isoformat()} 该检查已约满，请选择其他日期")
            if before is not None:
                await _give_back(session, booking.code, before)
            await session.execute(
                update(ExamItem)
                .where(col(ExamItem.order_id) == booking.order_id, col(ExamItem.item_no) == booking.item_no)
                .values(booked_day=booking.day)
            )

    @activity.defn
    async def release_exam_days(self, order_id: str, item_nos: list[int]) -> None:
        """Give back the places the exams hold (a cancelled exam's day is free for someone else)."""
        async with self._sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(col(ExamItem.exam_code), col(ExamItem.booked_day))
                    .where(
                        col(ExamItem.order_id) == order_id,
                        col(ExamItem.item_no).in_(item_nos),
                        col(ExamItem.booked_day).is_not(None),
                    )
                    .with_for_update()
                )
            ).all()
            for code, day in rows:
                if day is not None:  # the query asked for held days only; this keeps the types honest
                    await _give_back(session, code, day)
            await session.execute(
                update(ExamItem)
                .where(col(ExamItem.order_id) == order_id, col(ExamItem.item_no).in_(item_nos))
                .values(booked_day=None)
            )


async def _give_back(session: AsyncSession, code: str, day: date) -> None:
    await session.execute(
        update(ExamCapacity)
        .where(col(ExamCapacity.exam_code) == code, col(ExamCapacity.day) == day, col(ExamCapacity.booked) > 0)
        .values(booked=col(ExamCapacity.booked) - 1)
    )

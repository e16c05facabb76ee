"""Fake exam activities (the order's read model, a day's places), registered under the real names. Mixed into
`FakeWorld`; behaviour is set per test through attributes."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.exam import ExamBooking, ExamOrderInput, ExamOrderState


class ExamFakes:
    def __init__(self) -> None:
        # Every state the order flows recorded; places per (exam code, day), and which day each exam holds.
        self.exam_states: list[ExamOrderState] = []
        self.exam_capacity = 1
        self.exam_booked: Counter[tuple[str, date]] = Counter()
        self.exam_holds: dict[tuple[str, int], tuple[str, date]] = {}
        self.exam_releases: list[tuple[str, list[int]]] = []

    def _seen(self) -> None:
        raise NotImplementedError  # FakeWorld counts calls

    @activity.defn(name="record_exam_order")
    async def record_exam_order(self, order: ExamOrderInput, state: ExamOrderState) -> None:
        self._seen()
        self.exam_states.append(state)

    @activity.defn(name="book_exam_day")
    async def book_exam_day(self, booking: ExamBooking) -> None:
        self._seen()
        key = (booking.order_id, booking.item_no)
        held = self.exam_holds.get(key)
        if held == (booking.code, booking.day):
            return
        if self.exam_booked[(booking.code, booking.day)] >= self.exam_capacity:
            raise ApplicationError("该日已约满", type="EXAM_DAY_FULL", non_retryable=True)
        self.exam_booked[(booking.code, booking.day)] += 1
        if held is not None:
            self.exam_booked[held] -= 1
        self.exam_holds[key] = (booking.code, booking.day)

    @activity.defn(name="release_exam_days")
    async def release_exam_days(self, order_id: str, item_nos: list[int]) -> None:
        self._seen()
        self.exam_releases.append((order_id, item_nos))
        for item_no in item_nos:
            held = self.exam_holds.pop((order_id, item_no), None)
            if held is not None:
                self.exam_booked[held] -= 1

    def exam_activities(self) -> list[Any]:
        """All local (database) steps."""
        return [self.record_exam_order, self.book_exam_day, self.release_exam_days]

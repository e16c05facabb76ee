"""The hospital's clock: instants are stored in UTC; dates a user picks are calendar days in Asia/Shanghai."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def hospital_today(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(SHANGHAI).date()


def hospital_day(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a Shanghai calendar day."""
    start = datetime.combine(day, time(), SHANGHAI)
    return start, start + timedelta(days=1)

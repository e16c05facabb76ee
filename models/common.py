"""Enums and small value types used across flows."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from enum import StrEnum
from typing import Annotated

from pydantic import Field

# The hospital's clock. China keeps no daylight saving, so a fixed offset is exact, and workflows may use it without
# a tz database.
HOSPITAL_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")


def hospital_days(first: date, last: date) -> tuple[datetime, datetime]:
    """The hospital's calendar days `first`..`last` as a UTC interval [start, end)."""
    start = datetime.combine(first, time(), HOSPITAL_TZ).astimezone(UTC)
    return start, datetime.combine(last + timedelta(days=1), time(), HOSPITAL_TZ).astimezone(UTC)


# Money is integer fen (分), never float.
Fen = Annotated[int, Field(ge=0, description="amount in fen (分), CNY")]


class Role(StrEnum):
    PATIENT = "patient"
    DOCTOR = "doctor"
    PHARMACIST = "pharmacist"
    ADMIN = "admin"
    FINANCE = "finance"


class Channel(StrEnum):
    """Notification channels."""

    APP = "app"
    SMS = "sms"
    WECHAT = "wechat"
    # To staff with an address on record, for the notices the settings name (the mailer adapter, not the notifier).
    EMAIL = "email"

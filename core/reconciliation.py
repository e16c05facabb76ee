"""Which channels are reconciled every day, and when: one place for the worker (Schedules) and the API (re-runs)."""

from __future__ import annotations

from datetime import time, timedelta

from core.settings import Settings
from models.reconciliation import INSURANCE_CHANNEL

# Beijing time. WeChat Pay and Alipay publish the previous day's statement at about 10:00.
DAILY_AT = time(10, 30)
# A start missed (server down) is still made up within this window, which keeps it inside the same Beijing day, so
# "yesterday" as the launching workflow computes it stays the intended day.
CATCHUP_WINDOW = timedelta(hours=12)


def reconciliation_channels(settings: Settings) -> list[str]:
    """The payment channel in use (its adapter's name, as `bills.channel` holds it) and 医保."""
    return [settings.adapter_payment, INSURANCE_CHANNEL]

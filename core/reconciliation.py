"""Which channels are reconciled every day, and when: one place for the worker (Schedules) and the API (re-runs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta
from typing import NamedTuple

from core.settings import Settings
from models.reconciliation import INSURANCE_CHANNEL

# Beijing time. WeChat Pay and Alipay publish the previous day's statement at about 10:00.
DAILY_AT = time(10, 30)
# A start missed (server down) is still made up within this window, which keeps it inside the same Beijing day, so
# "yesterday" as the launching workflow computes it stays the intended day.
CATCHUP_WINDOW = timedelta(hours=12)


class Target(NamedTuple):
    """What one daily reconciliation covers: a channel, for one campus or (None) the whole hospital."""

    channel: str
    campus: str | None = None


def reconciliation_channels(settings: Settings) -> list[str]:
    """The payment channel in use (its adapter's name, as `bills.channel` holds it) and 医保."""
    return [settings.adapter_payment, INSURANCE_CHANNEL]


def reconciliation_targets(settings: Settings) -> list[Target]:
    """The payment channel once per configured campus (each has a merchant and statement of its own), or once for
    the hospital; 医保 once for the hospital (one institution code at the platform)."""
    campuses: list[str | None] = list(settings.campuses) or [None]
    return [*(Target(settings.adapter_payment, campus) for campus in campuses), Target(INSURANCE_CHANNEL)]


def main_campus(settings: Settings) -> str | None:
    """Where bills that name no campus belong: the first campus configured."""
    return next(iter(settings.campuses), None)


def campus_channel(channel: str, campus: str | None) -> str:
    """How the reconciliation activities name a campus's own payment adapter (its merchant); the channel itself where
    there is no campus."""
    return f"{channel}@{campus}" if campus else channel


@dataclass(frozen=True)
class ReconciliationPolicy:
    """What the reconciliation activities take from the settings: where campus-less bills belong, and when open bad
    debts alert whom (nobody by default)."""

    main_campus: str | None = None
    bad_debt_threshold_fen: int = 0
    bad_debt_alert_to: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> ReconciliationPolicy:
        return cls(
            main_campus=main_campus(settings),
            bad_debt_threshold_fen=settings.reconciliation_bad_debt_alert_fen,
            bad_debt_alert_to=tuple(settings.reconciliation_bad_debt_alert_to),
        )

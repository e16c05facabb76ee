"""Integrated systems (8.5.8): what an application may do, and the alert the gateway raises about refused calls."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel


class IntegrationScope(StrEnum):
    """What an integrated application may call; each partner endpoint requires one."""

    RX_READ = "rx.read"


class GatewayAlert(BaseModel):
    """Refused calls of one application (or of unknown callers, app_id "-") reached the alert threshold in a minute."""

    app_id: str
    window_start: datetime
    refusals: int
    last_code: str

"""Periodic clean-up of short-lived security records (a Temporal Schedule runs it)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class HousekeepingInput(BaseModel):
    # Failed sign-ins older than this no longer count toward a lock (settings.login_failure_window_s).
    login_failure_window_s: int = Field(gt=0)


class HousekeepingResult(BaseModel):
    login_throttle_purged: int = 0

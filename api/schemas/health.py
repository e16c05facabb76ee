"""Liveness of the API's own dependencies."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"
    postgres: Literal["ok"] = "ok"
    temporal: Literal["ok"] = "ok"

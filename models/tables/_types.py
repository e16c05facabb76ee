"""Column helpers: timezone-aware timestamps and JSONB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def Timestamp(*, nullable: bool = False, default_now: bool = False, index: bool = False) -> Any:
    return Field(
        default_factory=utcnow if default_now else (lambda: None),
        sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index),
    )


def Json(*, default: Any = None) -> Any:
    factory = (lambda: list(default)) if isinstance(default, list) else (lambda: dict(default or {}))
    return Field(default_factory=factory, sa_column=Column(JSONB, nullable=False))

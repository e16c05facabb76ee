"""Column helpers: timezone-aware timestamps and JSONB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def Timestamp(*, nullable: bool = False, default_now: bool = False, index: bool = False) -> Any:
    # The server default covers Core INSERT … ON CONFLICT statements, which skip the Python-side factory.
    return Field(
        default_factory=utcnow if default_now else (lambda: None),
        sa_column=Column(
            DateTime(timezone=True),
            nullable=nullable,
            index=index,
            server_default=func.now() if default_now else None,
        ),
    )


def Json(*, default: Any = None) -> Any:
    is_list = isinstance(default, list)
    factory = (lambda: list(default)) if is_list else (lambda: dict(default or {}))
    empty = text("'[]'::jsonb") if is_list else text("'{}'::jsonb")
    return Field(default_factory=factory, sa_column=Column(JSONB, nullable=False, server_default=empty))

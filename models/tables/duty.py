"""Pharmacists' duty (8.3.1.1): each sign-in opens a period, its sign-out closes it; a pharmacist has at most one open."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


class PharmacistDuty(SQLModel, table=True):
    __tablename__ = "pharmacist_duty"
    __table_args__ = (
        # Two sign-ins racing each other: the database lets one open a period, the other finds it open.
        Index(
            "pharmacist_duty_one_open",
            "pharmacist_id",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    pharmacist_id: str = Field(foreign_key="pharmacists.id", index=True, max_length=40)
    started_at: datetime = Timestamp(default_now=True)
    ended_at: datetime | None = Timestamp(nullable=True, index=True)

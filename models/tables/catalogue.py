"""Reference data: departments, diseases, the herb catalogue and the changes made to it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Column, Index, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.tables._types import Json, Timestamp


class Department(SQLModel, table=True):
    __tablename__ = "departments"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=64)
    description: str = ""
    # The 诊疗科目 of the physical hospital's licence this department practises under (a code of
    # `Settings.registered_subjects`); one that is no longer registered keeps the department out of the public catalogue.
    subject_code: str = Field(max_length=16)
    # 禁用科室 (8.6.1 b): a disabled department leaves the public catalogue; its doctors, visits and records stay.
    active: bool = Field(default=True, sa_column_kwargs={"server_default": "true"})


class Disease(SQLModel, table=True):
    """Diseases that may be followed up online; slots and eligibility carry these codes."""

    __tablename__ = "diseases"

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=64)
    department_id: str = Field(foreign_key="departments.id", index=True)


class Herb(SQLModel, table=True):
    """饮片 in the hospital pharmacy: price per 100 g in fen, stock in grams."""

    __tablename__ = "herbs"

    name: str = Field(primary_key=True, max_length=40)
    pinyin: str = Field(default="", max_length=64)
    price_fen_per_100g: int = Field(ge=0)
    stock_g: int = Field(ge=0)
    # The drug dictionary (8.6.2.1): the hospital's code, specification and unit.
    code: str | None = Field(default=None, unique=True, max_length=32)
    spec: str = Field(default="饮片", max_length=32, sa_column_kwargs={"server_default": "饮片"})
    unit: str = Field(default="g", max_length=8, sa_column_kwargs={"server_default": "g"})
    # 禁用: a disabled 饮片 cannot be prescribed; it stays for the prescriptions that named it.
    active: bool = Field(default=True, sa_column_kwargs={"server_default": "true"})
    # 管制分类 (8.6.2.2), e.g. 毒性中药; narcotic and psychotropic drugs are never listed at all.
    control_class: str | None = Field(default=None, max_length=16)
    # What delivery cannot guarantee (8.6.2.3), e.g. 冷藏.
    transport_note: str | None = Field(default=None, max_length=100)


class CatalogChange(SQLModel, table=True):
    """A proposed change to the drug catalogue (8.6.2.3): proposed by a pharmacist, published only once a senior
    pharmacist approved it; every change stays on record with what the entry was before."""

    __tablename__ = "catalog_changes"
    __table_args__ = (
        CheckConstraint("kind IN ('add', 'update', 'disable', 'enable')", name="catalog_change_kind"),
        CheckConstraint("status IN ('pending', 'published', 'rejected')", name="catalog_change_status"),
        # One change at a time per entry: the next is proposed against what the last one published.
        Index("catalog_change_pending", "herb_name", unique=True, postgresql_where=text("status = 'pending'")),
    )

    id: str = Field(primary_key=True, max_length=40)
    kind: str = Field(max_length=8)
    herb_name: str = Field(max_length=40, index=True)
    # The fields the change sets (models.catalog.HerbFields), and the entry as it was when published.
    fields: dict[str, Any] = Json()
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    reason: str
    proposed_by: str = Field(max_length=40)
    status: str = Field(default="pending", max_length=16, index=True)
    decided_by: str | None = Field(default=None, max_length=40)
    decided_at: datetime | None = Timestamp(nullable=True)
    note: str | None = None
    created_at: datetime = Timestamp(default_now=True)

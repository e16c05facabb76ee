"""Reference data: departments, diseases, the herb catalogue."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


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

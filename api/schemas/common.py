"""Shapes shared by several routers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

from api.errors import Problem
from models.common import HOSPITAL_TZ

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list, in the order each operation states."""

    items: list[T]
    total: int = Field(description="符合条件的总条数", examples=[42])
    limit: int = Field(examples=[20])
    offset: int = Field(examples=[0])


# Paging query parameters; bounded so no value a client sends can overflow a database integer.
Limit = Annotated[int, Query(ge=1, le=100, description="每页条数")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="跳过的条数")]

# The longest span of Beijing days one report covers, and the one it covers unless asked.
MAX_PERIOD_DAYS = 366
DEFAULT_PERIOD_DAYS = 30


@dataclass(frozen=True)
class Period:
    """Beijing days `first`..`last`, both included."""

    first: date
    last: date


def reporting_period(
    since: Annotated[date | None, Query(description="起始日期（含，北京时间），默认 30 天前")] = None,
    until: Annotated[date | None, Query(description="截止日期（含），默认今天")] = None,
) -> Period:
    """422 `INVALID_PERIOD` for a period that ends before it starts or spans more than a year."""
    last = until or datetime.now(HOSPITAL_TZ).date()
    first = since or last - timedelta(days=DEFAULT_PERIOD_DAYS)
    if first > last or (last - first).days >= MAX_PERIOD_DAYS:
        raise Problem(
            422, "INVALID_PERIOD", "日期范围无效", f"截止日期不能早于起始日期，且范围不超过 {MAX_PERIOD_DAYS} 天。"
        )
    return Period(first, last)


PeriodDep = Annotated[Period, Depends(reporting_period)]

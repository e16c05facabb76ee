"""Shapes shared by several routers."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

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

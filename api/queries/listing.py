"""What a list endpoint shows: each caller's own rows of those that belong to one patient and one doctor, and how
many rows a query matches in all."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Actor
from models.common import Role

# Any select, SQLModel's `select(Model)` included (a subclass of `Select`).
_Query = TypeVar("_Query", bound=Select[Any])


def own_rows(query: _Query, actor: Actor, patient_id: Any, doctor_id: Any) -> _Query | None:
    """`query` narrowed to the caller's rows: a patient's own (`patient_id`), a doctor's own (`doctor_id`), all of
    them for an admin; None for anyone else, who is shown an empty list."""
    if actor.role is Role.PATIENT:
        return query.where(patient_id == actor.ref)
    if actor.role is Role.DOCTOR:
        return query.where(doctor_id == actor.ref)
    return query if actor.role is Role.ADMIN else None


async def count_rows(session: AsyncSession, query: Select[*tuple[Any, ...]]) -> int:
    """How many rows `query` matches in all (a page of it is shown with this total)."""
    return (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()

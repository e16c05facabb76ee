"""Statistics for a period (数据统计分析, 8.6.5), for staff holding the statistics permission (admins by default)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.auth import Actor
from api.deps import SessionDep
from api.errors import problem_responses
from api.permissions import require_permission
from api.schemas.common import PeriodDep
from api.schemas.statistics import Statistics
from api.services import statistics
from models.permissions import Permission

router = APIRouter(prefix="/admin/statistics", tags=["statistics"])

ReaderDep = Annotated[Actor, Depends(require_permission(Permission.STATISTICS_READ))]


@router.get("", response_model=Statistics, responses=problem_responses(401, 403, 422), summary="统计分析")
async def period_statistics(actor: ReaderDep, session: SessionDep, period: PeriodDep) -> Statistics:
    """Bookings, visits, departments, doctors' sessions, evaluations, money, prescriptions, doctors, patients and
    diseases over the Beijing days `since`..`until`. 422 `INVALID_PERIOD` for a period that ends before it starts or
    spans more than a year."""
    return await statistics.period(session, period.first, period.last)

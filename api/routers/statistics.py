"""Statistics for a period (数据统计分析, 8.6.5), for staff holding the statistics permission (admins by default)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.auth import Actor
from api.deps import SessionDep
from api.errors import Problem, problem_responses
from api.permissions import require_permission
from api.schemas.statistics import Statistics
from api.services import statistics
from models.common import HOSPITAL_TZ
from models.permissions import Permission

router = APIRouter(prefix="/admin/statistics", tags=["statistics"])

ReaderDep = Annotated[Actor, Depends(require_permission(Permission.STATISTICS_READ))]
MAX_DAYS = 366


@router.get("", response_model=Statistics, responses=problem_responses(401, 403, 422), summary="统计分析")
async def period_statistics(
    actor: ReaderDep,
    session: SessionDep,
    since: Annotated[date | None, Query(description="起始日期（含，北京时间），默认 30 天前")] = None,
    until: Annotated[date | None, Query(description="截止日期（含），默认今天")] = None,
) -> Statistics:
    """Bookings, visits, departments, doctors' sessions, evaluations, money, prescriptions, doctors, patients and
    diseases over the Beijing days `since`..`until`. 422 `INVALID_PERIOD` for a period that ends before it starts or
    spans more than a year."""
    last = until or datetime.now(HOSPITAL_TZ).date()
    first = since or last - timedelta(days=30)
    if first > last or (last - first).days >= MAX_DAYS:
        raise Problem(422, "INVALID_PERIOD", "日期范围无效", f"截止日期不能早于起始日期，且范围不超过 {MAX_DAYS} 天。")
    return await statistics.period(session, first, last)

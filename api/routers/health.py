"""Is this API copy able to serve: PostgreSQL answers `SELECT 1` and Temporal answers a system-info call."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from api.deps import SessionDep, TemporalDep
from api.errors import Problem, problem_responses
from api.schemas.health import HealthOut

router = APIRouter(tags=["health"])

_TIMEOUT_S = 2.0


def _failed(dependency: str, exc: BaseException) -> bool:
    structlog.get_logger("api").warning("health_check_failed", dependency=dependency, error=type(exc).__name__)
    return False


async def _postgres_ok(session: AsyncSession) -> bool:
    try:
        await asyncio.wait_for(session.execute(text("SELECT 1")), _TIMEOUT_S)
    except Exception as exc:
        return _failed("postgres", exc)
    return True


async def _temporal_ok(temporal: Client) -> bool:
    try:
        await temporal.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=timedelta(seconds=_TIMEOUT_S))
    except Exception as exc:
        return _failed("temporal", exc)
    return True


@router.get("/health", response_model=HealthOut, responses=problem_responses(503), summary="健康检查")
async def health(session: SessionDep, temporal: TemporalDep) -> HealthOut:
    """200 only when both PostgreSQL and Temporal answer; otherwise 503 naming the one that did not."""
    postgres_ok, temporal_ok = await asyncio.gather(_postgres_ok(session), _temporal_ok(temporal))
    if not (postgres_ok and temporal_ok):
        postgres, temporal_state = ("ok" if up else "error" for up in (postgres_ok, temporal_ok))
        failed = "、".join(name for name, up in (("postgres", postgres_ok), ("temporal", temporal_ok)) if not up)
        raise Problem(
            503,
            "SERVICE_UNAVAILABLE",
            "服务暂不可用",
            f"依赖的服务无响应：{failed}。",
            postgres=postgres,
            temporal=temporal_state,
        )
    return HealthOut()

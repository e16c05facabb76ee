"""GET /health: 200 only when PostgreSQL and Temporal both answer; otherwise a 503 naming the one that failed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace

import httpx

from api.main import create_app
from core.settings import Settings


@asynccontextmanager
async def _serve(settings: Settings, temporal) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, temporal_client=temporal)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            yield http


class _DeadWorkflowService:
    async def get_system_info(self, *args, **kwargs):
        raise RuntimeError("connection refused")


async def test_health_is_ok_with_both_dependencies_up(api) -> None:
    response = await api.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "postgres": "ok", "temporal": "ok"}


async def test_health_names_temporal_when_it_does_not_answer(database_url, engine) -> None:
    dead_temporal = SimpleNamespace(workflow_service=_DeadWorkflowService())
    async with _serve(Settings(database_url=database_url), dead_temporal) as http:  # type: ignore[call-arg]
        response = await http.get("/api/v1/health")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "SERVICE_UNAVAILABLE"
    assert (body["postgres"], body["temporal"]) == ("ok", "error")
    assert "temporal" in body["detail"]


async def test_health_names_postgres_when_it_does_not_answer(client) -> None:
    unreachable = Settings(database_url="postgresql://postgres@127.0.0.1:1/nowhere")  # type: ignore[call-arg]
    async with _serve(unreachable, client) as http:
        response = await http.get("/api/v1/health")
    assert response.status_code == 503
    assert (response.json()["postgres"], response.json()["temporal"]) == ("error", "ok")

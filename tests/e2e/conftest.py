"""A whole stack per test: the API app in process (driven over HTTP through ASGI), workers with the real activities
and sandbox adapters, the session's Temporal dev server and PostgreSQL, the demo hospital seeded."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from activities.adapters.registry import load_adapters
from api.main import create_app
from core.settings import Settings
from workers.seed import seed_demo
from workers.worker import build_activities, build_workers


@dataclass
class Stack:
    http: httpx.AsyncClient
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]


@pytest_asyncio.fixture(scope="session")
async def demo_hospital(database_url: str, sessions: async_sessionmaker[AsyncSession]) -> None:
    await seed_demo(sessions, Settings(database_url=database_url))  # type: ignore[call-arg]


E2E_QUEUE = f"e2e-{uuid.uuid4().hex[:8]}"


def stack_settings(database_url: str, **overrides: Any) -> Settings:
    return Settings(database_url=database_url, task_queue=E2E_QUEUE, **overrides)  # type: ignore[call-arg]


@pytest_asyncio.fixture(scope="session")
async def e2e_workers(
    database_url: str, sessions: async_sessionmaker[AsyncSession], client: Client, demo_hospital: None
) -> AsyncIterator[None]:
    """One set of workers for the whole session: flows outlive a test (an eligible revisit check stays open for
    months), so later tests must find a worker on the queue those flows were started on."""
    settings = stack_settings(database_url)
    activities = build_activities(sessions, settings, load_adapters(sessions, settings))
    async with AsyncExitStack() as stack:
        for worker in build_workers(client, settings.task_queue, activities):
            await stack.enter_async_context(worker)
        yield


@asynccontextmanager
async def running_api(settings: Settings, client: Client) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, temporal_client=client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=60) as http:
            yield http


@pytest_asyncio.fixture
async def make_stack(
    database_url: str, sessions: async_sessionmaker[AsyncSession], client: Client, e2e_workers: None
) -> AsyncIterator[Callable[..., Any]]:
    """Start the API with settings of the test's choosing (business windows go into each flow's input)."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Stack:
            settings = stack_settings(database_url, **overrides)
            http = await stack.enter_async_context(running_api(settings, client))
            return Stack(http=http, settings=settings, sessions=sessions)

        yield start

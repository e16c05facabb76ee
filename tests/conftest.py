"""Session-wide real infrastructure: one PostgreSQL database (migrated) and one Temporal dev server.

`DATABASE_URL` picks an existing PostgreSQL server (CI); otherwise an embedded one is started under `.qihuang/`.
A fresh database is created on that server for every run and dropped at its end, so runs never share state.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from core.binaries import find_executable
from core.db import make_engine, make_sessionmaker
from core.migrate import upgrade
from core.postgres import drop_database, ensure_database, server_url
from core.settings import Settings
from core.temporal import data_converter

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest_asyncio.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    server = server_url(ROOT / ".qihuang" / "test-pg")
    name = f"qihuang_test_{uuid.uuid4().hex[:8]}"
    url = await ensure_database(server, name, fresh=True)
    yield url
    await drop_database(server, name)


@pytest_asyncio.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    test_settings = Settings(database_url=database_url)  # type: ignore[call-arg]
    engine = make_engine(test_settings, pool_size=20)
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest_asyncio.fixture(scope="session")
async def temporal_env(settings: Settings) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_executable("temporal"),
        data_converter=data_converter(settings),
        dev_server_log_level="error",
        dev_server_startup_timeout=None,
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def uid() -> str:
    """A short unique suffix for ids and task queues, so tests never see each other's flows."""
    return uuid.uuid4().hex[:10]

"""The async SQLAlchemy engine and session factory (asyncpg underneath), and a raw asyncpg pool for hot statements."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from core.settings import Settings


def make_engine(settings: Settings, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        settings.async_database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits on success, rolls back on any exception."""
    async with sessions() as session, session.begin():
        yield session


async def make_pool(
    settings: Settings,
    *,
    size: int = 10,
    prepare: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
) -> asyncpg.Pool:
    """Plain asyncpg connections for the statements every request or every booking runs (token check, idempotency
    claims, the slot attempt): through the ORM each of them costs several times the work PostgreSQL does for it.
    asyncpg prepares and caches each statement per connection, and replaces a connection the server closed.

    Their plans are generic: planning the booking statement costs PostgreSQL more than running it, and PostgreSQL's
    default would keep planning it afresh for every execution whenever the generic plan looks costlier on paper.
    Connections once opened stay open (see `fill_pool`), and `prepare` runs on each as it opens, so whatever a first
    execution costs (parsing, planning, learning the result's types) is paid then and not in a release-time rush.
    Nothing connects here, so a process starts while the database is down and says so in its health check."""
    return await asyncpg.create_pool(
        settings.libpq_database_url,
        min_size=0,
        max_size=size,
        max_inactive_connection_lifetime=0,
        server_settings={"plan_cache_mode": "force_generic_plan"},
        reset=_keep_session,
        init=prepare,
    )


async def fill_pool(pool: asyncpg.Pool) -> None:
    """Open every connection of the pool now: a new PostgreSQL backend costs far more than a statement, and a
    release-time rush would otherwise pay for all of them in its first second. Best effort: a database that is
    down now is connected to on first use instead."""
    size = pool.get_max_size()
    connections: list[asyncpg.Connection] = []
    try:
        async with asyncio.timeout(5):
            connections = list(await asyncio.gather(*(pool.acquire() for _ in range(size))))
    except (OSError, TimeoutError, asyncpg.PostgresError):
        pass
    finally:
        for connection in connections:
            await pool.release(connection)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to reset: statements on this pool run outside explicit transactions and never LISTEN, lock, SET or
    open cursors. asyncpg's default reset would cost a round trip on every release."""

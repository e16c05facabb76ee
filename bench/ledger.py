"""The evidence ledger on PostgreSQL: append throughput, tree-head signing time, proof latency, full audit time.

Appends go through EvidenceLedger.append (advisory lock, gap-free seq), from one caller and from many at once. The log
is then filled to --entries by COPY with correctly hashed leaves, and a tree head is signed with the sandbox SM2 TSA:
"cold" hashes every stored subtree for the first time, "warm" is the next head after --more further appends, the
periodic case. Uses its own database `qihuang_bench_ledger` (dropped and created again). Prints one JSON line.

    .venv/bin/python bench/ledger.py [--entries 100000] [--appends 2000] [--callers 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from activities.adapters.tsa.sandbox import SandboxTsa, TimestampIssuer
from bench._stack import configure_logging, log, postgres_server
from core.crypto.sm import sm3
from core.crypto.sm2 import Sm2PrivateKey
from core.db import make_engine, make_sessionmaker
from core.ledger import merkle
from core.ledger.audit import audit
from core.ledger.encoding import encode_entry, key_id
from core.ledger.service import EvidenceLedger
from core.migrate import upgrade
from core.postgres import ensure_database
from core.settings import Settings
from models.ledger import Evidence

DATABASE = "qihuang_bench_ledger"
_COPY_BATCH = 50_000


def item(n: int) -> Evidence:
    return Evidence(kind="rx.signed", subject=f"prescription:RX{n:09d}", digest=sm3(n.to_bytes(8, "big")).hex())


async def appends_per_s(ledger: EvidenceLedger, first: int, count: int, callers: int) -> float:
    queue = iter(range(first, first + count))

    async def caller() -> None:
        for n in queue:
            await ledger.append(item(n))

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return count / (time.perf_counter() - started)


async def bulk_fill(url: str, start: int, end: int) -> None:
    """Entries [start, end) as append would write them, by COPY: the fill is setup, not what is measured."""
    conn = await asyncpg.connect(url)
    try:
        for first in range(start, end, _COPY_BATCH):
            now = datetime.now(UTC)
            records = []
            for n in range(first, min(end, first + _COPY_BATCH)):
                evidence = item(n)
                digest = bytes.fromhex(evidence.digest)
                leaf = merkle.leaf_hash(encode_entry(evidence.kind, evidence.subject, digest, now))
                records.append((n, evidence.kind, evidence.subject, digest, leaf, now))
            await conn.copy_records_to_table(
                "ledger_entries",
                records=records,
                columns=["seq", "kind", "subject", "digest", "leaf_hash", "recorded_at"],
            )
    finally:
        await conn.close()


async def timed(awaitable: Awaitable[object]) -> float:
    started = time.perf_counter()
    await awaitable
    return time.perf_counter() - started


async def run(args: argparse.Namespace) -> dict[str, object]:
    url = await ensure_database(await postgres_server(), DATABASE, fresh=True)
    settings = Settings(database_url=url, _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(settings, pool_size=args.callers)
    try:
        await upgrade(engine)
        sessions = make_sessionmaker(engine)
        ledger = EvidenceLedger(sessions)
        key = Sm2PrivateKey.generate()
        tsa = SandboxTsa(sessions, settings, TimestampIssuer("sm2"))

        sequential = await appends_per_s(ledger, 0, args.appends, 1)
        concurrent = await appends_per_s(ledger, args.appends, args.appends, args.callers)
        filled = 2 * args.appends
        log.info("appends: %.0f/s alone, %.0f/s with %d callers", sequential, concurrent, args.callers)

        await bulk_fill(settings.libpq_database_url, filled, args.entries)
        log.info("filled to %d entries", args.entries)
        cold = await timed(ledger.sign_tree_head(key, tsa))
        await appends_per_s(ledger, args.entries, args.more, args.callers)
        warm = await timed(ledger.sign_tree_head(key, tsa))
        size = args.entries + args.more
        log.info("tree heads: cold %.2f s, warm %.3f s", cold, warm)

        prove = [await timed(ledger.prove(n * 7919 % size)) for n in range(50)]
        consistency = await timed(ledger.consistency(args.entries, size))
        public = key.public_key()
        started = time.perf_counter()
        report = await audit(sessions, {key_id(public): public}, tsa.trust_anchors)
        audit_s = time.perf_counter() - started
        if not report.ok:
            raise RuntimeError(f"the audit failed: {report.problems[:3]}")
    finally:
        await engine.dispose()
    return {
        "bench": "ledger",
        "entries": size,
        "appends_per_s": round(sequential, 1),
        f"appends_per_s_{args.callers}_callers": round(concurrent, 1),
        "sign_tree_head_cold_s": round(cold, 3),
        f"sign_tree_head_warm_s_after_{args.more}": round(warm, 4),
        "prove_ms_median": round(statistics.median(prove) * 1000, 2),
        "consistency_ms": round(consistency * 1000, 2),
        "audit_s": round(audit_s, 2),
        "audit_entries_per_s": round(size / audit_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--appends", type=int, default=2_000, help="appends measured, alone and again concurrently")
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--more", type=int, default=1_000, help="appends between the cold and the warm head")
    args = parser.parse_args()
    if args.entries < 2 * args.appends:
        parser.error("--entries must be at least twice --appends")
    configure_logging()
    print(json.dumps(asyncio.run(run(args)), separators=(",", ":")))


if __name__ == "__main__":
    main()

"""bench/reconcile.py at a tiny size, so the benchmark keeps running as the product changes: every injected difference
found by the product's matching and stored, none invented, every other number counted as matched with the right
totals, and the baseline's classification agreeing with it."""

from __future__ import annotations

import uuid
from pathlib import Path

from bench.reconcile import KINDS, parser, run
from core.postgres import drop_database, server_url

ROOT = Path(__file__).resolve().parent.parent.parent


async def test_the_reconciliation_benchmark_finds_every_injected_difference() -> None:
    # The test suite's PostgreSQL (DATABASE_URL or the embedded server), in a database of this test's own.
    server = server_url(ROOT / ".qihuang" / "test-pg")
    database = f"qihuang_test_bench_reconcile_{uuid.uuid4().hex[:8]}"
    # 2% of each kind: enough differences that every variant (refunds, both kinds of status mismatch) occurs.
    args = parser().parse_args(["--orders", "2000", "--mismatch-rate", "0.02"])
    try:
        result = await run(args, server=server, database=database)
    finally:
        await drop_database(server, database)

    assert result["injected"] == {**{str(kind): 40 for kind in KINDS}, "total": 160}
    assert result["found"] == result["injected"]
    assert result["false_positives"] == 0
    # Differences are stored, agreeing numbers counted and totalled on the run.
    assert result["items"] == result["items_expected"] == 160
    assert result["matched"] == result["matched_expected"]
    assert result["matched_fen_agrees"] is True
    assert result["baseline_agrees"] is True
    assert result["seconds"] > 0 and result["baseline_seconds"] > 0

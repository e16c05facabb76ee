"""The shared sandbox machinery: deduplication, concurrency, failure and latency injection, callback signatures."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import col

from activities.adapters.errors import AdapterError, AdapterRefusal, InvalidCallback
from activities.adapters.sandbox import SandboxRecorder, injected_failure, sign_callback, verify_callback
from models.tables.sandbox import SandboxCall


class Counter:
    """A `perform` that counts how often it really ran."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay

    async def __call__(self, _session) -> dict:  # type: ignore[no-untyped-def]
        self.calls += 1
        await asyncio.sleep(self.delay)
        return {"n": self.calls, "token": uuid.uuid4().hex}


def key() -> str:
    return f"k-{uuid.uuid4().hex}"


async def record(sessions, k: str) -> SandboxCall:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return (await session.scalars(select(SandboxCall).where(col(SandboxCall.idempotency_key) == k))).one()


async def test_retry_is_answered_from_the_record(sessions) -> None:
    recorder, perform, k = SandboxRecorder(sessions), Counter(), key()
    first = await recorder.once("test", "op", k, {"a": 1}, perform)
    again = await recorder.once("test", "op", k, {"a": 1}, perform)
    assert again == first and perform.calls == 1
    row = await record(sessions, k)
    assert (row.received, row.request, row.response) == (2, {"a": 1}, first)
    # Another operation (or system) under the same key is a different call.
    await recorder.once("test", "other", k, {}, perform)
    assert perform.calls == 2


async def test_concurrent_calls_with_one_key_perform_once(sessions) -> None:
    recorder, perform, k = SandboxRecorder(sessions), Counter(delay=0.05), key()
    answers = await asyncio.gather(*(recorder.once("test", "op", k, {}, perform) for _ in range(20)))
    assert perform.calls == 1
    assert all(answer == answers[0] for answer in answers)
    assert (await record(sessions, k)).received == 20


async def test_a_refused_call_leaves_no_record(sessions) -> None:
    recorder, k = SandboxRecorder(sessions), key()

    async def refuse(_session) -> dict:  # type: ignore[no-untyped-def]
        raise AdapterRefusal("NOPE", "拒绝")

    with pytest.raises(AdapterRefusal):
        await recorder.once("test", "op", k, {}, refuse)
    perform = Counter()
    await recorder.once("test", "op", k, {}, perform)
    assert perform.calls == 1


def expected_failures(k: str, rate: float) -> int:
    """How many injected failures precede the first success for this key, by the documented formula."""
    attempt = 0
    while injected_failure("test", "op", k, attempt, rate):
        attempt += 1
    return attempt


async def test_failure_injection_is_deterministic_and_a_retry_succeeds(sessions) -> None:
    # Find keys that fail at least once at 50 %, so the test exercises the retry path.
    keys = [k for k in (f"det-{n}-{uuid.uuid4().hex[:6]}" for n in range(40)) if expected_failures(k, 0.5) > 0][:5]
    assert keys
    for k in keys:
        recorder, perform = SandboxRecorder(sessions, failure_rate=0.5), Counter()
        failures = 0
        while True:
            try:
                await recorder.once("test", "op", k, {}, perform)
                break
            except AdapterError:
                failures += 1
        assert failures == expected_failures(k, 0.5)
        assert perform.calls == 1
        # Once recorded, a retry is answered from the record and never fails again.
        await recorder.once("test", "op", k, {}, perform)


def test_failure_rate_bounds() -> None:
    assert not any(injected_failure("s", "o", f"k{n}", 0, 0.0) for n in range(200))
    assert all(injected_failure("s", "o", f"k{n}", 0, 1.0) for n in range(200))
    share = sum(injected_failure("s", "o", f"k{n}", 0, 0.3) for n in range(2000)) / 2000
    assert 0.25 < share < 0.35


async def test_reads_are_gated_too(sessions) -> None:
    recorder = SandboxRecorder(sessions, failure_rate=1.0)
    with pytest.raises(AdapterError):
        await recorder.gate("test", "read", "x")


async def test_latency_is_added(sessions) -> None:
    recorder = SandboxRecorder(sessions, latency_ms=80)
    started = time.monotonic()
    await recorder.once("test", "op", key(), {}, Counter())
    assert time.monotonic() - started >= 0.08


def test_callback_signature_round_trip_and_window() -> None:
    body = '{"a":"中文"}'.encode()
    headers = sign_callback("s3cret", body)
    verify_callback("s3cret", headers, body)
    verify_callback("s3cret", {k.lower(): v for k, v in headers.items()}, body)  # header names are case-insensitive
    with pytest.raises(InvalidCallback):
        verify_callback("other", headers, body)
    old = sign_callback("s3cret", body, at=datetime.now(UTC) - timedelta(seconds=301))
    with pytest.raises(InvalidCallback):
        verify_callback("s3cret", old, body)
    recent = sign_callback("s3cret", body, at=datetime.now(UTC) - timedelta(seconds=290))
    verify_callback("s3cret", recent, body)
    with pytest.raises(InvalidCallback):
        verify_callback("s3cret", {**headers, "X-Sandbox-Timestamp": "soon"}, body)
    with pytest.raises(InvalidCallback):
        verify_callback("s3cret", headers, b"\xff\xfe")


async def test_a_recorded_call_is_replayed_even_by_a_failing_peer(sessions) -> None:
    # Deduplication comes before failure injection: what was done is answered, whatever the peer's mood.
    k, perform = key(), Counter()
    first = await SandboxRecorder(sessions).once("test", "op", k, {}, perform)
    assert await SandboxRecorder(sessions, failure_rate=1.0).once("test", "op", k, {}, perform) == first
    assert perform.calls == 1

"""Machinery every sandbox adapter shares: call recording with deduplication, latency and failure injection, and
the HMAC-SM3 scheme the sandbox peers sign their callbacks with.

Sandboxes behave like a careful real peer: a call retried with the same idempotency key is answered from the record
instead of being performed again, so a retried activity never charges, ships or texts twice. The record lives in
PostgreSQL (`sandbox_calls`) so it outlives a killed worker, exactly as a real peer's would.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.errors import AdapterError, InvalidCallback
from core.crypto.sm import hmac_sm3
from core.settings import Settings
from models.tables.sandbox import SandboxCall

# `perform` runs inside the transaction that records the call, so its writes and the record commit together.
Perform = Callable[[AsyncSession], Awaitable[dict[str, Any]]]


def table(model: type) -> Table:
    """The Core table behind a SQLModel class: typed columns for queries (SQLModel attributes type as values)."""
    return model.__table__  # type: ignore[attr-defined]


CALLS = table(SandboxCall)


TIMESTAMP_HEADER = "X-Sandbox-Timestamp"
NONCE_HEADER = "X-Sandbox-Nonce"
SIGNATURE_HEADER = "X-Sandbox-Signature"
CALLBACK_WINDOW_S = 300


def utcnow() -> datetime:
    return datetime.now(UTC)


def injected_failure(system: str, operation: str, key: str, attempt: int, failure_rate: float) -> bool:
    """Whether attempt number `attempt` of this call fails: a pure function, so a test can predict every failure."""
    if failure_rate <= 0:
        return False
    digest = hashlib.sha256(f"{system}:{operation}:{key}:{attempt}".encode()).hexdigest()
    return int(digest[:8], 16) / 0xFFFFFFFF < failure_rate


class SandboxRecorder:
    """Records sandbox calls once per (system, operation, idempotency key) and injects latency and failures."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, latency_ms: int = 0, failure_rate: float = 0.0):
        self._sessions = sessions
        self.latency_ms = latency_ms
        self.failure_rate = failure_rate
        # Injected failures so far per call, until it gets through. In-process on purpose: the sequence stays
        # deterministic for a given order of calls, and a restarted worker merely starts it again (still ending in a
        # success).
        self._failures: dict[tuple[str, str, str], int] = {}

    async def once(
        self, system: str, operation: str, idempotency_key: str, request: dict[str, Any], perform: Perform
    ) -> dict[str, Any]:
        """Perform a mutating call at most once per key and return its response (the stored one on a retry)."""
        await self._delay()
        stored = await self._replay(system, operation, idempotency_key)
        if stored is not None:
            return stored
        self._maybe_fail(system, operation, idempotency_key)
        async with self._sessions() as session, session.begin():
            # Claim the key first. A concurrent INSERT of the same key waits on the unique index until this
            # transaction ends, then either finds our committed row (and replays it) or, if we rolled back, claims it.
            claimed = await session.scalar(
                insert(CALLS)
                .values(
                    system=system,
                    operation=operation,
                    idempotency_key=idempotency_key,
                    request=request,
                    response={},
                    received=1,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(constraint="sandbox_call_once")
                .returning(CALLS.c.id)
            )
            if claimed is None:
                replayed = await self._bump(session, system, operation, idempotency_key)
                if replayed is None:  # cannot happen: the conflicting row has committed
                    raise AdapterError(f"sandbox {system}.{operation}: lost the record of key {idempotency_key!r}")
                return replayed
            # A refusal or error raised here rolls back the claim too, so a later retry performs afresh.
            response = await perform(session)
            await session.execute(update(CALLS).where(CALLS.c.id == claimed).values(response=response))
            return response

    async def gate(self, system: str, operation: str, key: str) -> None:
        """Latency and failure injection for reads (queries), which have no idempotency key of their own."""
        await self._delay()
        self._maybe_fail(system, operation, key)

    @staticmethod
    async def mark_once(session: AsyncSession, system: str, marker: str, key: str) -> bool:
        """Record a one-time effect (e.g. "stock restored for order X") in the caller's transaction.

        True the first time for (system, marker, key), False ever after, even across different idempotency keys.
        """
        claimed = await session.scalar(
            insert(CALLS)
            .values(
                system=system,
                operation=marker,
                idempotency_key=key,
                request={},
                response={},
                received=1,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(constraint="sandbox_call_once")
            .returning(CALLS.c.id)
        )
        return claimed is not None

    async def _delay(self) -> None:
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)

    def _maybe_fail(self, system: str, operation: str, key: str) -> None:
        slot = (system, operation, key)
        attempt = self._failures.get(slot, 0)
        if injected_failure(system, operation, key, attempt, self.failure_rate):
            self._failures[slot] = attempt + 1
            raise AdapterError(f"sandbox {system}.{operation}: injected failure (attempt {attempt})")
        # Got through: forget the count, so a long-running worker does not accumulate one entry per key.
        self._failures.pop(slot, None)

    async def _replay(self, system: str, operation: str, key: str) -> dict[str, Any] | None:
        async with self._sessions() as session, session.begin():
            return await self._bump(session, system, operation, key)

    @staticmethod
    async def _bump(session: AsyncSession, system: str, operation: str, key: str) -> dict[str, Any] | None:
        """Count one more receipt of a recorded call and return its response; None when it was never recorded."""
        result = await session.execute(
            update(CALLS)
            .where(CALLS.c.system == system, CALLS.c.operation == operation, CALLS.c.idempotency_key == key)
            .values(received=CALLS.c.received + 1)
            .returning(CALLS.c.response)
        )
        return result.scalar_one_or_none()


def recorder_for(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> SandboxRecorder:
    return SandboxRecorder(sessions, latency_ms=settings.sandbox_latency_ms, failure_rate=settings.sandbox_failure_rate)


# --- signed callbacks (payment notices, courier webhooks) ---------------------------------------------------------


def _signature(secret: str, timestamp: str, nonce: str, body: str) -> str:
    return hmac_sm3(secret.encode(), f"{timestamp}\n{nonce}\n{body}\n".encode()).hex()


def sign_callback(secret: str, body: bytes, *, at: datetime | None = None) -> dict[str, str]:
    """Headers a sandbox peer sends with `body`; `at` lets tests forge an old (replayed) callback."""
    timestamp = str(int((at or utcnow()).timestamp()))
    nonce = secrets.token_hex(16)
    return {
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: _signature(secret, timestamp, nonce, body.decode()),
    }


def verify_callback(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime | None = None,
    window_s: int = CALLBACK_WINDOW_S,
) -> None:
    """Raise `InvalidCallback` unless the signature verifies and the timestamp is within the window.

    The window bounds replays of captured callbacks; duplicates inside it are legitimate redeliveries and the
    receiving flow handles them idempotently.
    """
    # HTTP header names are case-insensitive; a plain dict from a test or another framework may not be.
    lowered = {name.lower(): value for name, value in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower())
    nonce = lowered.get(NONCE_HEADER.lower())
    signature = lowered.get(SIGNATURE_HEADER.lower())
    if not timestamp or not nonce or not signature:
        raise InvalidCallback("missing signature headers")
    try:
        signed_at = int(timestamp)
        text = body.decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCallback("malformed timestamp or body") from exc
    expected = _signature(secret, timestamp, nonce, text)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise InvalidCallback("signature does not verify")
    if abs((now or utcnow()).timestamp() - signed_at) > window_s:
        raise InvalidCallback("timestamp outside the accepted window")

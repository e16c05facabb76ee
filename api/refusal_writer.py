"""Refusals' answers stored into their Idempotency-Key claims in batches (see `api.idempotency.answer_claim`)."""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

log = structlog.get_logger()

# Many answers at once, committed without waiting for the WAL to reach the disk (see `RefusalWriter`).
_STORE_MANY_QUICK = """
    WITH quick AS (SELECT set_config('synchronous_commit', 'off', true))
    UPDATE idempotency_records r SET status_code = a.status, body = a.body
      FROM quick, unnest($1::text[], $2::text[], $3::int[], $4::jsonb[]) AS a(user_id, key, status, body)
     WHERE r.user_id = a.user_id AND r.key = a.key
"""


class RefusalWriter:
    """Stores refusals' answers into their claims, all those answered in one turn of the event loop with one
    statement. The answers have already gone out; a repeat of one of those requests in between waits for its answer
    as for any claim still in progress. If the statement fails, the claims stay in progress until their lease runs
    out and a retry decides them again, as after a crash."""

    def __init__(self, pg: asyncpg.Pool) -> None:
        self._pg = pg
        self._pending: list[tuple[str, str, int, str]] = []
        self._writing: asyncio.Task[None] | None = None

    def add(self, user_id: str, key: str, status: int, body: str) -> None:
        self._pending.append((user_id, key, status, body))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write())

    async def _write(self) -> None:
        await asyncio.sleep(0)  # let the refusals answered in this turn join
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._pg.execute(_STORE_MANY_QUICK, *(list(column) for column in zip(*batch, strict=True)))
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
                log.error("refusals_not_stored", count=len(batch), error=repr(error))

    async def flush(self) -> None:
        """Until every refusal added so far is stored (or failed to be)."""
        while self._writing is not None and not self._writing.done():
            await asyncio.shield(self._writing)

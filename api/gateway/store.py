"""The gateway's statements, on the raw asyncpg pool: every integration call runs two (the app, then its nonce and
rate count together), and a refused call one more. All shared state lives in PostgreSQL, so any number of API processes
behind any load-balancing rule see the same nonces and counts.

Counting is per app per minute (a fixed window on the database clock): simple, one row per app, at most twice the
limit across a window boundary. `count` is the same counter for other callers (api.gateway.limits: public endpoints
per client address), under a kind of their own. Rows of past windows and expired nonces are deleted by the same statements, a few
at a time, so no sweeper is needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

# Refusals of callers that name no known application are counted under this id.
UNKNOWN_APP = "-"
# The FieldCipher column the apps' SM4 keys are sealed under (integration_apps.sm4_key_enc).
SM4_KEY_COLUMN = "integration_sm4_key"


@dataclass(frozen=True)
class AppRecord:
    app_id: str
    public_key_pem: str
    sm4_key_enc: str
    scopes: frozenset[str]
    rate_limit_per_minute: int


@dataclass(frozen=True)
class Admission:
    fresh: bool
    hits: int
    window_left_s: float


_APP = """
    SELECT id, public_key_pem, sm4_key_enc, scopes, rate_limit_per_minute
      FROM integration_apps
     WHERE id = $1 AND active
"""

# The expired-nonce clean-up skips the nonce being inserted: a statement may not touch one row twice.
_ADMIT = """
    WITH expired AS (
        DELETE FROM integration_nonces WHERE app_id = $1 AND expires_at < now() AND nonce <> $2
    ), fresh AS (
        INSERT INTO integration_nonces AS n (app_id, nonce, expires_at) VALUES ($1, $2, $3)
        ON CONFLICT (app_id, nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE n.expires_at < now()
        RETURNING 1
    ), past AS (
        DELETE FROM integration_counters
         WHERE app_id = $1 AND kind = 'request' AND window_start < date_trunc('minute', now())
    ), counted AS (
        INSERT INTO integration_counters AS c (app_id, kind, window_start, hits)
        SELECT $1, 'request', date_trunc('minute', now()), 1 FROM fresh
        ON CONFLICT (app_id, kind, window_start) DO UPDATE SET hits = c.hits + 1
        RETURNING hits
    )
    SELECT EXISTS (SELECT FROM fresh) AS fresh,
           COALESCE((SELECT hits FROM counted), 0) AS hits,
           extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now())::float8 AS window_left_s
"""

# One statement counts the refusal and, while the app's count this minute is within the audit allowance, audits it.
_REFUSED = """
    WITH counted AS (
        INSERT INTO integration_counters AS c (app_id, kind, window_start, hits)
        VALUES ($1, 'refusal', date_trunc('minute', now()), 1)
        ON CONFLICT (app_id, kind, window_start) DO UPDATE SET hits = c.hits + 1
        RETURNING hits, window_start
    ), past AS (
        DELETE FROM integration_counters
         WHERE app_id = $1 AND kind = 'refusal' AND window_start < date_trunc('minute', now())
    ), audited AS (
        INSERT INTO audit_events (action, subject_type, subject_id, detail, client_ip, request_id)
        SELECT 'integration.refused', 'integration_app', $1, $2::jsonb, $3, $4 FROM counted WHERE hits <= $5
    )
    SELECT hits, window_start FROM counted
"""


# `_ADMIT`'s count without a nonce: one caller (`$1`) under one kind of count (`$2`).
_COUNT = """
    WITH past AS (
        DELETE FROM integration_counters
         WHERE app_id = $1 AND kind = $2 AND window_start < date_trunc('minute', now())
    ), counted AS (
        INSERT INTO integration_counters AS c (app_id, kind, window_start, hits)
        VALUES ($1, $2, date_trunc('minute', now()), 1)
        ON CONFLICT (app_id, kind, window_start) DO UPDATE SET hits = c.hits + 1
        RETURNING hits
    )
    SELECT (SELECT hits FROM counted) AS hits,
           extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now())::float8 AS window_left_s
"""


async def load_app(pg: asyncpg.Pool, app_id: str) -> AppRecord | None:
    """The active application with this id."""
    row = await pg.fetchrow(_APP, app_id)
    if row is None:
        return None
    return AppRecord(
        app_id=row["id"],
        public_key_pem=row["public_key_pem"],
        sm4_key_enc=row["sm4_key_enc"],
        scopes=frozenset(row["scopes"]),
        rate_limit_per_minute=row["rate_limit_per_minute"],
    )


async def admit(pg: asyncpg.Pool, app_id: str, nonce: str, nonce_expires_at: datetime) -> Admission:
    """Use the nonce and, if it was fresh, count the request in the app's current minute."""
    row = await pg.fetchrow(_ADMIT, app_id, nonce, nonce_expires_at)
    assert row is not None
    return Admission(fresh=row["fresh"], hits=row["hits"], window_left_s=row["window_left_s"])


async def count(pg: asyncpg.Pool, caller: str, kind: str) -> Admission:
    """Count one call of `caller` (at most 40 characters) under `kind` (at most 16) in the current minute."""
    row = await pg.fetchrow(_COUNT, caller, kind)
    assert row is not None
    return Admission(fresh=True, hits=row["hits"], window_left_s=row["window_left_s"])


async def record_refusal(
    pg: asyncpg.Pool,
    app_id: str,
    detail: dict[str, str],
    client_ip: str | None,
    request_id: str | None,
    audit_allowance: int,
) -> tuple[int, datetime]:
    """Count a refused call of `app_id` (or UNKNOWN_APP); returns the count this minute and the minute's start."""
    row = await pg.fetchrow(_REFUSED, app_id, json.dumps(detail), client_ip, request_id, audit_allowance)
    assert row is not None
    return row["hits"], row["window_start"]

"""`Idempotency-Key` for POSTs that create or pay: a repeat of the same request gets the first answer again.

The key is claimed by inserting its row, committed at once as "in progress"; the primary key decides who claims it.
The work then runs holding no idempotency connection (a transaction held open across the work would tie up one
pooled connection per request and deadlock a rush larger than the pool). A concurrent repeat polls, holding no
connection, until the answer is stored, then replays it. A 5xx or a crash frees the key; a claim left behind by a
dead process is taken over after its lease.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from api.auth import Actor
from api.errors import PROBLEM_MEDIA_TYPE, Problem
from core.crypto.sm import sm3_hex

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# 1–128 visible ASCII characters (a UUID is the usual choice).
_VALID_KEY = re.compile(r"[\x21-\x7e]{1,128}")
# How long a repeat waits for the first request with its key to finish before being told to retry.
_WAIT_S = 15.0
_POLL_S = 0.05
_LEASE_S = 120

Compute = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]


def _response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    media_type = PROBLEM_MEDIA_TYPE if status >= 400 else "application/json"
    return JSONResponse(body, status_code=status, media_type=media_type, headers=headers)


async def _run(request: Request, compute: Compute) -> tuple[int, dict[str, Any]]:
    """The work's answer; a 4xx Problem it raises is a business answer too, and is stored like a success."""
    try:
        status, body = await compute()
    except Problem as problem:
        if problem.status >= 500:
            raise
        return problem.status, problem.body(request.url.path)
    return status, jsonable_encoder(body)


async def request_hash(request: Request, content_digest: str | None = None) -> str:
    """What makes two requests the same request: method, target and body, or `content_digest` in place of a body
    whose bytes differ between two sendings of the same request (a multipart body's boundary is random)."""
    target = request.url.path + ("?" + request.url.query if request.url.query else "")
    content = content_digest.encode() if content_digest is not None else await request.body()
    return sm3_hex(request.method.encode() + b"\n" + target.encode() + b"\n" + content)


# Every keyed POST runs these, so they go through the raw pool (see `core.db.make_pool`). A claim older than the lease
# belongs to a request that died: it is taken over. A statement that claims the key in the same round trip as its work
# (booking) puts its own SELECT of the row between `CLAIM_INSERT` and `CLAIM_CONFLICT`.
CLAIM_INSERT = "INSERT INTO idempotency_records (user_id, key, request_hash, status_code, body, created_at)"
CLAIM_CONFLICT = f"""
    ON CONFLICT (user_id, key) DO UPDATE SET created_at = now(), request_hash = excluded.request_hash
     WHERE idempotency_records.status_code = 0
       AND idempotency_records.created_at < now() - interval '{_LEASE_S} seconds'
    RETURNING key"""
_CLAIM = f"{CLAIM_INSERT} VALUES ($1, $2, $3, 0, '{{}}'::jsonb, now()) {CLAIM_CONFLICT}"
_STORE = "UPDATE idempotency_records SET status_code = $3, body = $4::jsonb WHERE user_id = $1 AND key = $2"
_RELEASE = "DELETE FROM idempotency_records WHERE user_id = $1 AND key = $2 AND status_code = 0"
_READ = "SELECT request_hash, status_code, body FROM idempotency_records WHERE user_id = $1 AND key = $2"


async def _claim(pg: asyncpg.Pool, user_id: str, key: str, request_hash: str) -> bool:
    """Insert the key's row, committed at once (status 0: in progress); False when the key was claimed before."""
    return await pg.fetchval(_CLAIM, user_id, key, request_hash) is not None


def _in_progress() -> Problem:
    return Problem(409, "IDEMPOTENCY_IN_PROGRESS", "相同请求正在处理中", "使用该幂等键的请求尚未完成，请稍后重试。")


def _replay(record: asyncpg.Record | None, request_hash: str) -> JSONResponse:
    if record is None:
        raise _in_progress()
    if record["request_hash"] != request_hash:
        raise Problem(
            422,
            "IDEMPOTENCY_KEY_REUSED",
            "幂等键已被其他请求使用",
            "该 Idempotency-Key 已用于内容不同的请求，请为新的请求生成新的幂等键。",
        )
    return _response(record["status_code"], json.loads(record["body"]), {REPLAYED_HEADER: "true"})


async def _answer_of(pg: asyncpg.Pool, user_id: str, key: str, request_hash: str) -> JSONResponse:
    """Wait (holding no connection) for the first request with this key to store its answer, then replay it."""
    deadline = time.monotonic() + _WAIT_S
    while True:
        record = await pg.fetchrow(_READ, user_id, key)
        if record is None or record["status_code"] != 0:
            return _replay(record, request_hash)
        if time.monotonic() > deadline:
            raise _in_progress()
        await asyncio.sleep(_POLL_S)


def check_key(key: str) -> None:
    if not _VALID_KEY.fullmatch(key):
        raise Problem(
            400,
            "INVALID_IDEMPOTENCY_KEY",
            "幂等键无效",
            "Idempotency-Key 应为 1–128 个可见 ASCII 字符，建议使用 UUID。",
        )


async def idempotent(
    request: Request, actor: Actor, key: str | None, compute: Compute, *, content_digest: str | None = None
) -> JSONResponse:
    """Answer with `compute()`'s (status, body), or with the stored answer when this key was seen before.

    Only 2xx and 4xx answers are stored; a 5xx or an exception leaves the key free, so the client may retry it.
    `content_digest`: see `request_hash`.
    """
    if key is None:
        return await answer_claim(request, actor.user_id, None, "", False, compute)
    check_key(key)
    hashed = await request_hash(request, content_digest)
    pg: asyncpg.Pool = request.app.state.ctx.pg
    claimed = await _claim(pg, actor.user_id, key, hashed)
    return await answer_claim(request, actor.user_id, key, hashed, claimed, compute)


async def answer_claim(
    request: Request,
    user_id: str,
    key: str | None,
    hashed: str | None,
    claimed: bool,
    compute: Compute,
    *,
    refusals_may_repeat: bool = False,
) -> JSONResponse:
    """Once the key's claim was tried (by `idempotent`, or inside a handler's own statement, see `CLAIM_INSERT`):
    run `compute()` and store its answer if this request claimed the key, else replay the first request's answer.
    Without a key, `compute()` answers and its problems go to the error handlers as they are.

    `refusals_may_repeat`: the caller vouches that deciding a 4xx answer again is harmless (it took nothing). Such an
    answer goes out at once and is stored right after, with the other refusals of the moment, without waiting for the
    disk (`api.refusal_writer`): if a crash loses it, the request is decided again on its retry. At a booking rush nearly
    every answer is a refusal, and a round trip and a flush for each are work the rush cannot spare."""
    if key is None or hashed is None:
        status, body = await compute()
        return _response(status, jsonable_encoder(body))
    pg: asyncpg.Pool = request.app.state.ctx.pg
    if not claimed:
        return await _answer_of(pg, user_id, key, hashed)
    stored = False
    try:
        status, body = await _run(request, compute)
        if refusals_may_repeat and 400 <= status < 500:
            request.app.state.ctx.refusals.add(user_id, key, status, json.dumps(body))
            stored = True
        elif status < 500:
            await pg.execute(_STORE, user_id, key, status, json.dumps(body))
            stored = True
    finally:
        if not stored:
            await pg.execute(_RELEASE, user_id, key)
    return _response(status, body)

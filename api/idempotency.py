"""`Idempotency-Key` for POSTs that create or pay: a repeat of the same request gets the first answer again.

The key is claimed by inserting its row, committed at once as "in progress"; the primary key decides who claims it.
The work then runs holding no idempotency connection (a transaction held open across the work would tie up one
pooled connection per request and deadlock a rush larger than the pool). A concurrent repeat polls, holding no
connection, until the answer is stored, then replays it. A 5xx or a crash frees the key; a claim left behind by a
dead process is taken over after its lease.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from api.auth import Actor
from api.errors import PROBLEM_MEDIA_TYPE, Problem
from core.crypto.sm import sm3_hex
from models.tables import IdempotencyRecord

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# 1–128 visible ASCII characters (a UUID is the usual choice).
_VALID_KEY = re.compile(r"[\x21-\x7e]{1,128}")
# How long a repeat waits for the first request with its key to finish before being told to retry.
_WAIT_S = 15.0
_POLL_S = 0.05
_LEASE = timedelta(seconds=120)

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


async def _request_hash(request: Request) -> str:
    target = request.url.path + ("?" + request.url.query if request.url.query else "")
    return sm3_hex(request.method.encode() + b"\n" + target.encode() + b"\n" + await request.body())


async def _claim(sessions, user_id: str, key: str, request_hash: str) -> bool:
    """Insert the key's row, committed at once (status 0: in progress); False when the key was claimed before.

    A claim older than the lease belongs to a request that died: it is taken over."""
    async with sessions() as session, session.begin():
        claimed = await session.execute(
            insert(IdempotencyRecord)
            .values(
                user_id=user_id,
                key=key,
                request_hash=request_hash,
                status_code=0,
                body={},
                created_at=datetime.now(UTC),
            )
            .on_conflict_do_update(
                index_elements=["user_id", "key"],
                set_={"created_at": datetime.now(UTC), "request_hash": request_hash},
                where=(col(IdempotencyRecord.status_code) == 0)
                & (col(IdempotencyRecord.created_at) < datetime.now(UTC) - _LEASE),
            )
            .returning(col(IdempotencyRecord.key))
        )
        return claimed.first() is not None


def _in_progress() -> Problem:
    return Problem(409, "IDEMPOTENCY_IN_PROGRESS", "相同请求正在处理中", "使用该幂等键的请求尚未完成，请稍后重试。")


def _replay(record: IdempotencyRecord | None, request_hash: str) -> JSONResponse:
    if record is None:
        raise _in_progress()
    if record.request_hash != request_hash:
        raise Problem(
            422,
            "IDEMPOTENCY_KEY_REUSED",
            "幂等键已被其他请求使用",
            "该 Idempotency-Key 已用于内容不同的请求，请为新的请求生成新的幂等键。",
        )
    return _response(record.status_code, record.body, {REPLAYED_HEADER: "true"})


async def _answer_of(sessions, user_id: str, key: str, request_hash: str) -> JSONResponse:
    """Wait (holding no connection) for the first request with this key to store its answer, then replay it."""
    deadline = time.monotonic() + _WAIT_S
    while True:
        async with sessions() as session:
            record = await session.get(IdempotencyRecord, (user_id, key))
        if record is None or record.status_code != 0:
            return _replay(record, request_hash)
        if time.monotonic() > deadline:
            raise _in_progress()
        await asyncio.sleep(_POLL_S)


async def idempotent(request: Request, actor: Actor, key: str | None, compute: Compute) -> JSONResponse:
    """Answer with `compute()`'s (status, body), or with the stored answer when this key was seen before.

    Only 2xx and 4xx answers are stored; a 5xx or an exception leaves the key free, so the client may retry it.
    """
    if key is None:
        status, body = await compute()
        return _response(status, jsonable_encoder(body))
    if not _VALID_KEY.fullmatch(key):
        raise Problem(
            400,
            "INVALID_IDEMPOTENCY_KEY",
            "幂等键无效",
            "Idempotency-Key 应为 1–128 个可见 ASCII 字符，建议使用 UUID。",
        )
    request_hash = await _request_hash(request)
    sessions = request.app.state.ctx.sessions
    if not await _claim(sessions, actor.user_id, key, request_hash):
        return await _answer_of(sessions, actor.user_id, key, request_hash)
    stored = False
    try:
        status, body = await _run(request, compute)
        if status < 500:
            async with sessions() as session, session.begin():
                await session.execute(
                    update(IdempotencyRecord)
                    .where(col(IdempotencyRecord.user_id) == actor.user_id, col(IdempotencyRecord.key) == key)
                    .values(status_code=status, body=body)
                )
            stored = True
    finally:
        if not stored:
            async with sessions() as session, session.begin():
                await session.execute(
                    delete(IdempotencyRecord).where(
                        col(IdempotencyRecord.user_id) == actor.user_id,
                        col(IdempotencyRecord.key) == key,
                        col(IdempotencyRecord.status_code) == 0,
                    )
                )
    return _response(status, body)

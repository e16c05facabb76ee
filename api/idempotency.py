"""`Idempotency-Key` for POSTs that create or pay: a repeat of the same request gets the first answer again.

The key is claimed by inserting its row in a transaction that stays open while the work runs. A concurrent request
with the same key blocks on that row in PostgreSQL until the first one commits (then it replays the stored answer)
or rolls back (then it claims the key and does the work itself). So the primary key decides, nothing is polled, and
a crash mid-way leaves no half-finished record behind.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
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
_LOCK_WAIT = "15s"
_LOCK_NOT_AVAILABLE = "55P03"

Compute = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]


class _NotStored(Exception):
    """Carries a 5xx answer out of the claiming transaction, which rolls back so the key stays free for a retry."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__()
        self.response = response


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


async def _claim(session: AsyncSession, user_id: str, key: str, request_hash: str) -> bool:
    """Insert the key's row; False when another request already holds it (after waiting for that one to finish)."""
    try:
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
            .on_conflict_do_nothing()
            .returning(col(IdempotencyRecord.key))
        )
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            raise _in_progress() from exc
        raise
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
    try:
        async with sessions() as session, session.begin():
            await session.execute(text(f"SET LOCAL lock_timeout = '{_LOCK_WAIT}'"))
            if not await _claim(session, actor.user_id, key, request_hash):
                return _replay(await session.get(IdempotencyRecord, (actor.user_id, key)), request_hash)
            status, body = await _run(request, compute)
            if status >= 500:
                raise _NotStored(_response(status, body))
            await session.execute(
                update(IdempotencyRecord)
                .where(col(IdempotencyRecord.user_id) == actor.user_id, col(IdempotencyRecord.key) == key)
                .values(status_code=status, body=body)
            )
    except _NotStored as skipped:
        return skipped.response
    return _response(status, body)

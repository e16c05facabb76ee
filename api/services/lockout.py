"""Locking a login name after repeated failed sign-ins (9.3.1.2.2 认证失败策略).

Counted in PostgreSQL, so every API process sees the same count; each failure is one atomic upsert on the name's
row, which also forgets failures older than the window. Unknown names are counted and locked like real ones.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import Problem
from core.crypto.sm import sm3_hex
from core.settings import Settings
from models.common import HOSPITAL_TZ

_LOCKED_UNTIL = text("SELECT locked_until FROM login_throttle WHERE key = :key AND locked_until > now()")

_COUNT_FAILURE = text("""
    INSERT INTO login_throttle AS t (key, failures) VALUES (:key, ARRAY[now()])
    ON CONFLICT (key) DO UPDATE
       SET failures = ARRAY(SELECT f FROM unnest(t.failures) AS f WHERE f > now() - make_interval(secs => :window))
                      || now()
    RETURNING cardinality(failures)
""")

# Runs in the transaction of the upsert above, which holds the row: no other failure can slip in between.
_LOCK = text("""
    UPDATE login_throttle SET failures = '{}', locked_until = now() + make_interval(secs => :lock)
     WHERE key = :key
    RETURNING locked_until
""")

_CLEAR = text("DELETE FROM login_throttle WHERE key = :key AND (locked_until IS NULL OR locked_until <= now())")
_UNLOCK = text("DELETE FROM login_throttle WHERE key = :key RETURNING locked_until > now()")


def throttle_key(username: str) -> str:
    """The row of a login name as typed (digested: what is typed there is sometimes a password)."""
    return sm3_hex(username.encode())


async def locked_until(session: AsyncSession, key: str) -> datetime | None:
    return (await session.execute(_LOCKED_UNTIL, {"key": key})).scalar()


async def count_failure(session: AsyncSession, key: str, settings: Settings) -> datetime | None:
    """Count one failure in the caller's transaction; returns the end of the lock when this failure locks the name."""
    failures = (
        await session.execute(_COUNT_FAILURE, {"key": key, "window": float(settings.login_failure_window_s)})
    ).scalar_one()
    if failures < settings.login_max_failures:
        return None
    until: datetime = (await session.execute(_LOCK, {"key": key, "lock": float(settings.login_lock_s)})).scalar_one()
    return until


async def clear_failures(session: AsyncSession, key: str) -> None:
    """After a complete sign-in: earlier failures no longer count (a lock in force stays)."""
    await session.execute(_CLEAR, {"key": key})


async def unlock(session: AsyncSession, key: str) -> bool:
    """Lift a lock and forget the failures; True when a lock was in force."""
    return bool((await session.execute(_UNLOCK, {"key": key})).scalar())


def locked_problem(until: datetime) -> Problem:
    local = until.astimezone(HOSPITAL_TZ).strftime("%Y-%m-%d %H:%M")
    retry_after = max(1, int((until - datetime.now(UTC)).total_seconds()))
    return Problem(
        423,
        "ACCOUNT_LOCKED",
        "账号已临时锁定",
        f"登录失败次数过多，账号已锁定至 {local}（北京时间），请届时再试或联系管理员解锁。",
        headers={"Retry-After": str(retry_after)},
        locked_until=until.isoformat(),
    )

"""The login-throttle purge against PostgreSQL: rows that lock or count nothing go, the others stay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from activities.housekeeping import HousekeepingActivities

_ROW = text(
    "INSERT INTO login_throttle (key, failures, locked_until) VALUES (:key, :failures, "
    "now() + make_interval(secs => CAST(:lock AS float8)))"
)
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


async def test_purge_keeps_locks_and_recent_failures(sessions) -> None:  # type: ignore[no-untyped-def]
    keys = {name: uuid.uuid4().hex for name in ("stale", "expired_lock", "recent_failure", "locked")}
    async with sessions() as session, session.begin():
        for name, failures, lock in (
            ("stale", [LONG_AGO], None),
            ("expired_lock", [], -60.0),
            ("recent_failure", [LONG_AGO], None),
            ("locked", [], 600.0),
        ):
            await session.execute(_ROW, {"key": keys[name], "failures": failures, "lock": lock})
        await session.execute(
            text("UPDATE login_throttle SET failures = failures || now() WHERE key = :key"),
            {"key": keys["recent_failure"]},
        )

    purged = await HousekeepingActivities(sessions).purge_login_throttle(900)
    async with sessions() as session:
        left = set(
            (
                await session.execute(
                    text("SELECT key FROM login_throttle WHERE key = ANY(:keys)"), {"keys": list(keys.values())}
                )
            )
            .scalars()
            .all()
        )
    assert left == {keys["recent_failure"], keys["locked"]}
    assert purged >= 2  # the session's database is shared: other tests' stale rows may go too

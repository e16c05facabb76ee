"""Clean-up steps for the housekeeping Schedule."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

# A row with no lock in force and no failure inside the window counts for nothing: a later failure starts afresh
# exactly as it would with the row there. Every failed sign-in of every name ever typed (existing or not, see
# models/tables/security.py) leaves such a row behind, so without this the table only grows. The conditions are
# checked again on a row a concurrent sign-in failure changes, so a row that just counted a failure stays.
_PURGE_LOGIN_THROTTLE = text("""
    DELETE FROM login_throttle
     WHERE (locked_until IS NULL OR locked_until <= now())
       AND NOT EXISTS (SELECT FROM unnest(failures) AS f WHERE f > now() - make_interval(secs => :window))
""")


class HousekeepingActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def purge_login_throttle(self, window_s: int) -> int:
        """Delete login-throttle rows that no longer lock or count anything; returns how many went."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(_PURGE_LOGIN_THROTTLE, {"window": float(window_s)})
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

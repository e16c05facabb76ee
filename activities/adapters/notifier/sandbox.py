"""Sandbox notifier: "sends" by recording the message; the record is the outbox tests and the demo look at."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.sandbox import CALLS, recorder_for
from core.crypto.sm import mask
from core.settings import Settings
from models.common import Channel


class SandboxNotifier:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._recorder = recorder_for(sessions, settings)

    async def send(
        self, *, idempotency_key: str, channel: Channel, phone: str | None, user_id: str, title: str, body: str
    ) -> str:
        # The phone is kept masked: enough to see where a text went, not a copy of the PII.
        request = {"user_id": user_id, "channel": channel.value, "phone": mask(phone), "title": title, "body": body}

        async def perform(_: AsyncSession) -> dict[str, Any]:
            # A random id, so a replayed answer is visibly the recorded one rather than recomputed.
            return {"message_id": f"SBMSG{uuid.uuid4().hex[:20].upper()}"}

        response = await self._recorder.once("notifier", "send", idempotency_key, request, perform)
        return str(response["message_id"])

    async def delivered(self, user_id: str) -> list[str]:
        """Message ids delivered to `user_id`, oldest first (the contract's simulator hook)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(CALLS.c.response)
                .where(
                    CALLS.c.system == "notifier",
                    CALLS.c.operation == "send",
                    CALLS.c.request["user_id"].astext == user_id,
                )
                .order_by(CALLS.c.id)
            )
            return [str(row["message_id"]) for row in rows]

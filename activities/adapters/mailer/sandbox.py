"""Sandbox mailer: "sends" by recording the e-mail; the record is the outbox tests and the demo look at."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.mailer import message_id, sender_domain
from activities.adapters.sandbox import CALLS, recorder_for
from core.crypto.sm import mask_email, sm3_hex
from core.settings import Settings

SYSTEM = "mailer"


def address_digest(address: str) -> str:
    """How the outbox finds a recipient's e-mails without keeping the address itself."""
    return sm3_hex(address.strip().lower().encode())


class SandboxMailer:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._recorder = recorder_for(sessions, settings)
        self._domain = sender_domain(settings.smtp_from) if settings.smtp_from else "sandbox.qihuang.invalid"

    async def send(self, *, idempotency_key: str, to: str, subject: str, text: str, html: str) -> str:
        # The address is kept masked, with a digest to find it by: enough to see where a mail went.
        request = {
            "to": mask_email(to),
            "to_digest": address_digest(to),
            "subject": subject,
            "text": text,
            "html": html,
        }

        async def perform(_: AsyncSession) -> dict[str, Any]:
            return {"message_id": message_id(idempotency_key, self._domain)}

        response = await self._recorder.once(SYSTEM, "send", idempotency_key, request, perform)
        return str(response["message_id"])

    async def delivered(self, address: str) -> list[str]:
        """Message-IDs delivered to `address`, oldest first (the contract's simulator hook)."""
        return [str(row["response"]["message_id"]) for row in await self.outbox(address)]

    async def outbox(self, address: str) -> list[dict[str, Any]]:
        """What was sent to `address`, oldest first: each call's request (subject, text, html) and response."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(CALLS.c.request, CALLS.c.response)
                .where(
                    CALLS.c.system == SYSTEM,
                    CALLS.c.operation == "send",
                    CALLS.c.request["to_digest"].astext == address_digest(address),
                )
                .order_by(CALLS.c.id)
            )
            return [{"request": request, "response": response} for request, response in rows]

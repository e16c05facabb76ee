"""Sandbox consortium chain: anchors are kept in PostgreSQL, in the sandbox call record (one "block" per anchor).

Reading an anchor back goes to that record, not to the platform's own `ledger_anchors`, so a test that changes the
record plays a chain that disagrees with the ledger.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.sandbox import CALLS, recorder_for
from core.crypto.sm import sm3_hex
from core.settings import Settings
from models.ledger import AnchorReceipt, TreeHead

SYSTEM = "ledger_anchor"


class SandboxLedgerAnchor:
    chain = "sandbox-chain"

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._recorder = recorder_for(sessions, settings)

    async def publish(self, *, idempotency_key: str, head: TreeHead) -> AnchorReceipt:
        request = {"size": head.size, "root_hash": head.root_hash, "signature": head.signature}

        async def perform(session: AsyncSession) -> dict[str, Any]:
            height = await session.scalar(
                select(func.count()).where(CALLS.c.system == SYSTEM, CALLS.c.operation == "publish")
            )
            anchored_at = datetime.now(UTC)
            receipt = AnchorReceipt(
                chain=self.chain,
                tx_id="0x" + sm3_hex(f"{head.size}:{head.root_hash}:{anchored_at.isoformat()}".encode()),
                block_height=int(height or 0),
                size=head.size,
                root_hash=head.root_hash,
                signature=head.signature,
                anchored_at=anchored_at,
            )
            return receipt.model_dump(mode="json")

        response = await self._recorder.once(SYSTEM, "publish", idempotency_key, request, perform)
        return AnchorReceipt.model_validate(response)

    async def fetch(self, *, tx_id: str) -> AnchorReceipt | None:
        async with self._sessions() as session:
            held = await session.scalar(
                select(CALLS.c.response).where(
                    CALLS.c.system == SYSTEM,
                    CALLS.c.operation == "publish",
                    CALLS.c.response["tx_id"].astext == tx_id,
                )
            )
        return None if held is None else AnchorReceipt.model_validate(held)

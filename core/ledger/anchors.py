"""Where signed tree heads were anchored on a consortium chain (`ledger_anchors`), and the audit of those anchors.

The table is append-only like the rest of the ledger. The audit reads each anchor back from the chain (through
whatever fetches it, e.g. activities.adapters.ledger_anchor.LedgerAnchor.fetch) and compares what the chain holds
with the signed tree head of that size: a root or signature changed on either side shows up as a mismatch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import transaction
from models.ledger import AnchorReceipt
from models.tables import LedgerAnchor, LedgerTreeHead

ANCHORS = cast(Table, LedgerAnchor.__table__)  # type: ignore[attr-defined]
HEADS = cast(Table, LedgerTreeHead.__table__)  # type: ignore[attr-defined]

Fetch = Callable[[str], Awaitable[AnchorReceipt | None]]


async def recorded(sessions: async_sessionmaker[AsyncSession], size: int, chain: str) -> str | None:
    """The transaction holding the head of `size` on `chain`, if it was anchored there."""
    async with sessions() as session:
        return await session.scalar(select(ANCHORS.c.tx_id).where(ANCHORS.c.size == size, ANCHORS.c.chain == chain))


async def record(sessions: async_sessionmaker[AsyncSession], receipt: AnchorReceipt) -> None:
    """Keep where the head went (once per size and chain: a retried step adds nothing)."""
    async with transaction(sessions) as session:
        await session.execute(
            insert(ANCHORS)
            .values(
                size=receipt.size,
                chain=receipt.chain,
                tx_id=receipt.tx_id,
                block_height=receipt.block_height,
                anchored_at=receipt.anchored_at,
            )
            .on_conflict_do_nothing()
        )


@dataclass
class AnchorAudit:
    checked: int = 0
    # Anchors on a chain this process has no adapter for: listed, not failed (the ledger itself is audited apart).
    unchecked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def audit_anchors(
    sessions: async_sessionmaker[AsyncSession], chain: str | None, fetch: Fetch | None
) -> AnchorAudit:
    """Read every anchor on `chain` back through `fetch` and compare it with its tree head."""
    async with sessions() as session:
        rows: list[Any] = list(
            await session.execute(
                select(ANCHORS, HEADS.c.root_hash, HEADS.c.signature)
                .join(HEADS, HEADS.c.size == ANCHORS.c.size)
                .order_by(ANCHORS.c.size, ANCHORS.c.chain)
            )
        )
    result = AnchorAudit()
    for row in rows:
        name = f"树头 size={row.size} 的链上锚定（{row.chain}，交易 {row.tx_id[:18]}…）"
        if fetch is None or row.chain != chain:
            result.unchecked.append(name)
            continue
        result.checked += 1
        held = await fetch(row.tx_id)
        if held is None:
            result.problems.append(f"{name}：链上查无此交易")
        elif held.size != row.size or held.root_hash != row.root_hash.hex():
            result.problems.append(f"{name}：链上记录的树大小或根哈希与账本树头不符")
        elif held.signature != row.signature.hex():
            result.problems.append(f"{name}：链上记录的树头签名与账本不符")
    return result

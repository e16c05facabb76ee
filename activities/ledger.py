"""Evidence ledger steps for flows: put evidence on record (a database step), sign a tree head (calls the TSA) and
anchor it on a consortium chain when one is configured."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.adapters.ledger_anchor import LedgerAnchor
from activities.adapters.tsa import TimestampAuthority
from activities.errors import refusals_are_final
from core.crypto.sm2 import Sm2PrivateKey
from core.ledger import anchors
from core.ledger.service import EvidenceLedger
from models.ledger import AnchorReceipt, Evidence, LedgerReceipt, TreeHead


class LedgerActivities:
    def __init__(
        self,
        ledger: EvidenceLedger,
        signing_key: Sm2PrivateKey,
        tsa: TimestampAuthority,
        anchor: LedgerAnchor | None = None,
        sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self._ledger = ledger
        self._signing_key = signing_key
        self._tsa = tsa
        # The chain and the database that records what went there; without both, heads are not anchored.
        self._anchor = anchor if sessions is not None else None
        self._sessions = sessions

    @activity.defn
    async def append_evidence(self, evidence: Evidence) -> LedgerReceipt:
        """Idempotent on (kind, subject, digest): a retry returns the first receipt."""
        return await self._ledger.append(evidence)

    @activity.defn
    async def sign_tree_head(self) -> TreeHead:
        """Sign and timestamp the head over every entry so far (or return the latest head if nothing was added)."""
        return await refusals_are_final(self._ledger.sign_tree_head(self._signing_key, self._tsa))

    @activity.defn
    async def anchor_tree_head(self, head: TreeHead) -> AnchorReceipt | None:
        """Publish the head to the consortium chain, once per size (None when no chain is configured). A head
        anchored already (the Schedule's next run with nothing new appended) is not published again."""
        if self._anchor is None or self._sessions is None:
            return None
        chain = self._anchor.chain
        tx_id = await anchors.recorded(self._sessions, head.size, chain)
        if tx_id is not None:
            return await self._anchor.fetch(tx_id=tx_id)
        receipt = await refusals_are_final(
            self._anchor.publish(idempotency_key=f"ledger-anchor:{chain}:{head.size}", head=head)
        )
        await anchors.record(self._sessions, receipt)
        return receipt

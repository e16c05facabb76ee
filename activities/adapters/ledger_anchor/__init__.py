"""Anchoring the evidence ledger on a consortium chain (联盟链存证): each signed tree head is published there, so a
third party holding the chain can show that the ledger's root at that size existed, signed, by then.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from models.ledger import AnchorReceipt, TreeHead


@runtime_checkable
class LedgerAnchor(Protocol):
    # The chain's name, recorded with each anchor (e.g. "sandbox-chain", a BSN or 长安链 network id).
    chain: str

    async def publish(self, *, idempotency_key: str, head: TreeHead) -> AnchorReceipt:
        """Publish the head's size, root and signature; the same key returns the first receipt."""
        ...

    async def fetch(self, *, tx_id: str) -> AnchorReceipt | None:
        """What the chain holds under `tx_id` (None when it holds nothing there)."""
        ...

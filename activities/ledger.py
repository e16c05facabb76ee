"""Evidence ledger steps for flows: put evidence on record (a database step) and sign a tree head (calls the TSA)."""

from __future__ import annotations

from temporalio import activity

from activities.adapters.tsa import TimestampAuthority
from activities.errors import refusals_are_final
from core.crypto.sm2 import Sm2PrivateKey
from core.ledger.service import EvidenceLedger
from models.ledger import Evidence, LedgerReceipt, TreeHead


class LedgerActivities:
    def __init__(self, ledger: EvidenceLedger, signing_key: Sm2PrivateKey, tsa: TimestampAuthority) -> None:
        self._ledger = ledger
        self._signing_key = signing_key
        self._tsa = tsa

    @activity.defn
    async def append_evidence(self, evidence: Evidence) -> LedgerReceipt:
        """Idempotent on (kind, subject, digest): a retry returns the first receipt."""
        return await self._ledger.append(evidence)

    @activity.defn
    async def sign_tree_head(self) -> TreeHead:
        """Sign and timestamp the head over every entry so far (or return the latest head if nothing was added)."""
        return await refusals_are_final(self._ledger.sign_tree_head(self._signing_key, self._tsa))

"""Signing for the flows: a person's SM2 signature over a digest, then a trusted timestamp over that signature, so
neither the content nor the moment can be disputed later (8.2.6.5, 8.3.1)."""

from __future__ import annotations

from datetime import datetime

from activities.adapters.signer import Signer
from activities.adapters.tsa import TimestampAuthority
from activities.errors import refusals_are_final
from core.crypto import tsp
from core.crypto.sm import sm3_hex
from core.ledger.service import EvidenceLedger
from models.ledger import Evidence
from models.signature import SignatureRecord, canonical_json


class Signatures:
    def __init__(self, signer: Signer, tsa: TimestampAuthority, ledger: EvidenceLedger) -> None:
        self._signer = signer
        self._tsa = tsa
        self._ledger = ledger

    async def sign(
        self, signer_id: str, digest: str, signed_at: datetime, reason: str | None, *, kind: str, subject: str
    ) -> SignatureRecord:
        """`digest` is the SM3 hex digest of the canonical JSON of what `signer_id` signs. The signed record goes on
        the evidence ledger as `kind` (e.g. "rx.signed") for `subject` ("prescription:<id>"); a retried step finds
        its entry there already."""
        signature = await refusals_are_final(self._signer.sign(signer_id=signer_id, data=digest.encode()))
        algorithm = self._tsa.hash_algorithm
        token = await refusals_are_final(
            self._tsa.timestamp(data_digest=tsp.digest(algorithm, signature.signature), hash_algorithm=algorithm)
        )
        record = SignatureRecord(
            signer_id=signer_id,
            digest=digest,
            signed_at=signed_at,
            reason=reason,
            signature=signature,
            timestamp=token,
        )
        await self._ledger.append(
            Evidence(kind=kind, subject=subject, digest=sm3_hex(canonical_json(record.model_dump(mode="json"))))
        )
        return record

"""Signing for the flows: a person's SM2 signature over a digest, then a trusted timestamp over that signature, so
neither the content nor the moment can be disputed later (8.2.6.5, 8.3.1)."""

from __future__ import annotations

from datetime import datetime

from activities.adapters.signer import Signer
from activities.adapters.tsa import TimestampAuthority
from activities.errors import refusals_are_final
from core.crypto import tsp
from models.signature import SignatureRecord


class Signatures:
    def __init__(self, signer: Signer, tsa: TimestampAuthority) -> None:
        self._signer = signer
        self._tsa = tsa

    async def sign(self, signer_id: str, digest: str, signed_at: datetime, reason: str | None) -> SignatureRecord:
        """`digest` is the SM3 hex digest of the canonical JSON of what `signer_id` signs."""
        signature = await refusals_are_final(self._signer.sign(signer_id=signer_id, data=digest.encode()))
        algorithm = self._tsa.hash_algorithm
        token = await refusals_are_final(
            self._tsa.timestamp(data_digest=tsp.digest(algorithm, signature.signature), hash_algorithm=algorithm)
        )
        return SignatureRecord(
            signer_id=signer_id,
            digest=digest,
            signed_at=signed_at,
            reason=reason,
            signature=signature,
            timestamp=token,
        )

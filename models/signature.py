"""Electronic signatures (电子签名) of doctors and pharmacists: SM2 with SM3 (GB/T 32918, GM/T 0009), each bound to a
trusted time by an RFC 3161 timestamp over the signature (8.2.6.5, 8.3.1)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime

from asn1crypto import x509
from pydantic import BaseModel

from core.crypto.sm2 import DEFAULT_SIGNER_ID, Sm2PublicKey
from core.crypto.tsp import TimestampToken

SM2_SM3 = "SM2-SM3"


def canonical_json(value: object) -> bytes:
    """The one byte form of a JSON value that digests are taken of: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str).encode()


class ElectronicSignature(BaseModel):
    """One person's signature over some bytes, with what verifies it."""

    algorithm: str
    # Whose signature: the user id of the doctor or pharmacist.
    signer_id: str
    # Which key signed (a CA certificate serial, or the signer service's key id), for audits after a key changes.
    key_id: str
    public_key_pem: str
    # The SM2 distinguishing identifier the ZA hash was computed with.
    distinguishing_id: str = DEFAULT_SIGNER_ID.decode()
    signature_b64: str

    @property
    def signature(self) -> bytes:
        return base64.b64decode(self.signature_b64)

    def verify(self, data: bytes) -> None:
        """Raise `core.crypto.sm2.InvalidSignature` unless this is the signature of `data`."""
        key = Sm2PublicKey.from_pem(self.public_key_pem.encode())
        key.verify(self.signature, data, signer_id=self.distinguishing_id.encode())


class SignatureRecord(BaseModel):
    """A signature as a flow keeps it: the SM3 digest of the canonical JSON of what was signed, the signer's SM2
    signature of that digest, and the trusted timestamp over the signature. Records made before signatures were
    SM2-signed carry the digest only."""

    signer_id: str
    digest: str
    signed_at: datetime
    reason: str | None = None
    signature: ElectronicSignature | None = None
    timestamp: TimestampToken | None = None

    def verify(self, anchors: Sequence[x509.Certificate]) -> None:
        """Raise unless the signature is the signer's over `digest` and the timestamp covers that signature
        (`core.crypto.sm2.InvalidSignature`, `core.crypto.tsp.TimestampError`, or ValueError when either is missing).
        Whether `digest` is that of the signed content is for the caller, who has the content."""
        if self.signature is None or self.timestamp is None:
            raise ValueError("this record has no SM2 signature and timestamp")
        self.signature.verify(self.digest.encode())
        self.timestamp.verify(self.signature.signature, anchors)

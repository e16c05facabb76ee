"""Personal electronic signatures. A hospital signs through its CA's co-signing service (协同签名), where each
person's key stays with the CA and is unlocked by that person; an adapter asks it to sign for one person and hands
back the signature with the public key that verifies it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from models.signature import ElectronicSignature


@runtime_checkable
class Signer(Protocol):
    name: str

    async def sign(self, *, signer_id: str, data: bytes) -> ElectronicSignature:
        """`signer_id`'s SM2 signature of `data` (hashed with SM3 and the signer's ZA by the signer itself)."""
        ...

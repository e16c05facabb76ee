"""The byte strings the ledger hashes and signs. Once entries and heads exist, these never change: any new layout gets
a new version byte, and verification reads the version to pick the layout.

Entry (the leaf's input), big-endian, TLS-style length prefixes:
    version u8 = 1 ‖ recorded_at u64 (µs since the Unix epoch) ‖ kind u8-len ‖ subject u16-len ‖ digest u8-len
Tree head (what SM2 signs), RFC 6962 3.5 TreeHeadSignature with SM3 roots:
    version u8 = 0 ‖ signature_type u8 = 1 (tree_hash) ‖ timestamp u64 (ms) ‖ tree_size u64 ‖ root_hash[32]
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

from asn1crypto import pem

from core.crypto.sm import sm3
from core.crypto.sm2 import Sm2PublicKey

ENTRY_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("ledger times must be timezone-aware")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _with_length(value: bytes, length_bytes: int) -> bytes:
    if len(value) >= 1 << (8 * length_bytes):
        raise ValueError(f"a field of {len(value)} bytes does not fit a {length_bytes}-byte length")
    return len(value).to_bytes(length_bytes, "big") + value


def encode_entry(kind: str, subject: str, digest: bytes, recorded_at: datetime) -> bytes:
    return b"".join(
        (
            struct.pack(">BQ", ENTRY_VERSION, _micros(recorded_at)),
            _with_length(kind.encode(), 1),
            _with_length(subject.encode(), 2),
            _with_length(digest, 1),
        )
    )


def head_time(moment: datetime) -> datetime:
    """`moment` cut to the millisecond the signed encoding carries, so a stored head re-encodes exactly."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def encode_tree_head(size: int, root_hash: bytes, signed_at: datetime) -> bytes:
    if len(root_hash) != 32:
        raise ValueError("an SM3 root has 32 bytes")
    return struct.pack(">BBQQ", 0, 1, _micros(signed_at) // 1000, size) + root_hash


def key_id(public_key: Sm2PublicKey) -> str:
    """SM3 of the key's DER SubjectPublicKeyInfo, hex: RFC 6962's LogID with SM3."""
    _, _, der = pem.unarmor(public_key.to_pem())
    return sm3(der).hex()

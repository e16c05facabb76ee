"""SM4-GCM encryption of every Temporal payload (DESIGN §6): workflow inputs, results, signals and activity arguments
carry patient data, and the Temporal server keeps them in its histories for the namespace's whole retention.

Each payload is serialized whole (metadata and data) and sealed under the current key; the envelope says which key
(`encryption-key-id`), so keys rotate without a flag day: new payloads use the current key, and every configured key
still opens what it once sealed. Payloads without our envelope (histories written before encryption, the recorded
test histories) pass through decoding unchanged.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from core.crypto.sm import Sm4Gcm
from core.settings import Settings

# The encoding Temporal's samples and tools use for encrypted payloads, so the UI and CLI show them as such.
ENCODING = b"binary/encrypted"
CIPHER = b"sm4-gcm"
KEY_ID_METADATA = "encryption-key-id"
CIPHER_METADATA = "encryption-cipher"

_HEX_KEY = re.compile(r"[0-9a-fA-F]{32}")


def parse_key(text: str) -> bytes:
    """A 16-byte SM4 key written as 32 hex digits or as base64."""
    if _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text)
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("a payload key must be 32 hex digits or base64") from None
    if len(key) != 16:
        raise ValueError(f"a payload key must be 16 bytes, not {len(key)}")
    return key


class Sm4PayloadCodec(PayloadCodec):
    def __init__(self, keys: Mapping[str, bytes], current_key_id: str) -> None:
        if current_key_id not in keys:
            raise ValueError(f"the current payload key {current_key_id!r} is not among the configured keys")
        for key_id, key in keys.items():
            if not key_id or len(key) != 16:
                raise ValueError(f"payload key {key_id!r}: a non-empty id and a 16-byte key are required")
        # One keyed SM4-GCM object per key, reused for every payload: a new cipher context per payload cost more
        # than sealing a small one.
        self._keys = {key_id: Sm4Gcm(key) for key_id, key in keys.items()}
        self._current = current_key_id

    @classmethod
    def from_settings(cls, settings: Settings) -> Sm4PayloadCodec:
        keys: dict[str, bytes] = {}
        for key_id, text in settings.payload_keys.items():
            try:
                keys[key_id] = parse_key(text)
            except ValueError as exc:
                raise ValueError(f"QIHUANG_PAYLOAD_KEYS[{key_id!r}]: {exc}") from None
        return cls(keys, settings.payload_key_id)

    @property
    def current_key_id(self) -> str:
        return self._current

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(payload) for payload in payloads]

    def seal(self, payload: Payload) -> Payload:
        key_id = self._current.encode()
        # The key id is authenticated too, so the metadata that picks the key cannot be swapped unnoticed.
        blob = self._keys[self._current].encrypt(payload.SerializeToString(), key_id)
        return Payload(
            metadata={"encoding": ENCODING, CIPHER_METADATA: CIPHER, KEY_ID_METADATA: key_id},
            data=blob,
        )

    def open(self, payload: Payload) -> Payload:
        if not is_encrypted(payload):
            return payload
        cipher = payload.metadata.get(CIPHER_METADATA, b"")
        if cipher != CIPHER:
            raise ValueError(f"payload encrypted with {cipher.decode(errors='replace')!r}, not SM4-GCM")
        key_id = payload.metadata.get(KEY_ID_METADATA, b"")
        sm4 = self._keys.get(key_id.decode(errors="replace"))
        if sm4 is None:
            raise ValueError(f"payload encrypted with unknown key {key_id.decode(errors='replace')!r}")
        return Payload.FromString(sm4.decrypt(payload.data, key_id))


def is_encrypted(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == ENCODING

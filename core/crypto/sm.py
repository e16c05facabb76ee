"""SM3 and SM4 through `cryptography` (OpenSSL). SM2 lives in its own module."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_NONCE = 12
_TAG = 16


# Copying a fresh hash object costs a third less than making one, and the ledger hashes twice per entry.
_SM3 = hashes.Hash(hashes.SM3())


def sm3(data: bytes) -> bytes:
    digest = _SM3.copy()
    digest.update(data)
    return digest.finalize()


def sm3_hex(data: bytes) -> str:
    return sm3(data).hex()


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac.finalize()


def sm4_gcm_encrypt(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """nonce ‖ ciphertext ‖ tag, with a fresh random 96-bit nonce."""
    nonce = os.urandom(_NONCE)
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    body = encryptor.update(plaintext) + encryptor.finalize()
    return nonce + body + encryptor.tag


def sm4_gcm_decrypt(key: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    if len(blob) < _NONCE + _TAG:
        raise ValueError("ciphertext too short")
    nonce, body, tag = blob[:_NONCE], blob[_NONCE:-_TAG], blob[-_TAG:]
    decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(aad)
    try:
        return decryptor.update(body) + decryptor.finalize()
    except InvalidTag as exc:
        raise ValueError("ciphertext was altered or the key is wrong") from exc


class FieldCipher:
    """Encrypts PII columns (SM4-GCM, versioned text form) and computes their blind index (HMAC-SM3).

    The column name is bound in as associated data, so a ciphertext moved to another column does not decrypt.
    """

    _VERSION = "sm4g1:"

    def __init__(self, key_hex: str, index_key_hex: str) -> None:
        self._key = bytes.fromhex(key_hex)
        self._index_key = bytes.fromhex(index_key_hex)
        if len(self._key) != 16:
            raise ValueError("the SM4 key must be 16 bytes (32 hex digits)")

    def encrypt(self, column: str, value: str | None) -> str | None:
        if value is None:
            return None
        blob = sm4_gcm_encrypt(self._key, value.encode(), column.encode())
        return self._VERSION + base64.b64encode(blob).decode()

    def decrypt(self, column: str, token: str | None) -> str | None:
        if token is None:
            return None
        if not token.startswith(self._VERSION):
            raise ValueError("unknown ciphertext version")
        blob = base64.b64decode(token[len(self._VERSION) :])
        return sm4_gcm_decrypt(self._key, blob, column.encode()).decode()

    def blind_index(self, column: str, value: str) -> str:
        """Deterministic keyed digest of a normalized value, for equality look-ups without decrypting."""
        normalized = "".join(value.split()).upper()
        return hmac_sm3(self._index_key, f"{column}:{normalized}".encode()).hex()


def mask(value: str | None, keep_start: int = 3, keep_end: int = 4) -> str | None:
    """Show only the ends of an identifier, e.g. 138****5678."""
    if value is None:
        return None
    if len(value) <= keep_start + keep_end:
        return "*" * len(value)
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[-keep_end:]

"""SM3 through `cryptography`; SM4-GCM through our C extension (`_sm4gcm.c`, x86-64 with PCLMULQDQ), else the system
libcrypto's EVP interface where it has SM4-GCM, else `cryptography` (both OpenSSL). SM2 lives in its own module.

`Sm4Gcm` is a keyed SM4-GCM object: long-lived holders of a key (the payload codec, FieldCipher) make one and reuse it,
so a small message costs its data and not a new cipher context (`cryptography` cannot re-use one: there each message
still builds its own). Every backend writes and reads the same nonce (12) ‖ ciphertext ‖ tag (16), so each opens what
another sealed. OpenSSL 3.0 (Debian 12) has SM4 but not SM4-GCM, and through a Python binding even one that has it
costs several microseconds per message in calls alone: hence the extension.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from types import ModuleType
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from core.crypto import _sm4_openssl

_NONCE = _sm4_openssl.NONCE
_TAG = _sm4_openssl.TAG


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


class _CryptographySm4Gcm:
    """The fallback: `cryptography` builds a context per message (it cannot re-key one with a new IV)."""

    __slots__ = ("_algorithm",)

    def __init__(self, key: bytes) -> None:
        self._algorithm = algorithms.SM4(key)  # validated once

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        nonce = os.urandom(_NONCE)
        encryptor = Cipher(self._algorithm, modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(aad)
        body = encryptor.update(plaintext) + encryptor.finalize()
        return nonce + body + encryptor.tag

    def decrypt(self, blob: bytes, aad: bytes = b"") -> bytes:
        if len(blob) < _NONCE + _TAG:
            raise ValueError("ciphertext too short")
        nonce, body, tag = blob[:_NONCE], blob[_NONCE:-_TAG], blob[-_TAG:]
        decryptor = Cipher(self._algorithm, modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(aad)
        try:
            return decryptor.update(body) + decryptor.finalize()
        except InvalidTag as exc:
            raise ValueError("ciphertext was altered or the key is wrong") from exc


_OPENSSL_SM4_GCM, _OPENSSL_PROBLEM = _sm4_openssl.has_cipher(b"SM4-GCM")
try:
    from core.crypto import _sm4gcm
except ImportError as exc:  # not built (no C compiler at install, not x86-64) or a CPU without PCLMULQDQ
    _NATIVE: ModuleType | None = None
    _NATIVE_PROBLEM = str(exc)
else:
    _NATIVE, _NATIVE_PROBLEM = _sm4gcm, ""
# In order of preference: the first is the default.
SM4_BACKENDS: tuple[str, ...] = tuple(
    name
    for name, available in (("native", _NATIVE is not None), ("openssl", _OPENSSL_SM4_GCM), ("cryptography", True))
    if available
)


class _Sealer(Protocol):
    def encrypt(self, plaintext: bytes, aad: bytes = b"", /) -> bytes: ...

    def decrypt(self, blob: bytes, aad: bytes = b"", /) -> bytes: ...


class Sm4Gcm:
    """SM4-GCM under one 16-byte key: `encrypt(plaintext, aad=b"")` gives nonce ‖ ciphertext ‖ tag under a nonce never
    used before, `decrypt(blob, aad=b"")` raises ValueError if anything was altered, the AAD differs or the key is
    wrong. Thread-safe.

    backend: "native" (our extension), "openssl" (the system libcrypto, when it has SM4-GCM) or "cryptography"; None
    takes the first of SM4_BACKENDS. Tests pick one to show that each opens what another sealed. The native backend
    counts its nonces from a random field (see `_sm4gcm.c`); the others draw each one at random.
    """

    __slots__ = ("backend", "decrypt", "encrypt")

    def __init__(self, key: bytes, backend: str | None = None) -> None:
        if len(key) != 16:
            raise ValueError("the SM4 key must be 16 bytes")
        self.backend = backend or SM4_BACKENDS[0]
        impl: _Sealer
        if self.backend == "native":
            if _NATIVE is None:
                raise ValueError(f"SM4 backend 'native' is not available: {_NATIVE_PROBLEM}")
            impl = _NATIVE.Key(key)
        elif self.backend == "openssl":
            if not _OPENSSL_SM4_GCM:
                raise ValueError(f"SM4 backend 'openssl' is not available: {_OPENSSL_PROBLEM}")
            impl = _sm4_openssl.EvpGcm(key, b"SM4-GCM")
        elif self.backend == "cryptography":
            impl = _CryptographySm4Gcm(key)
        else:
            raise ValueError(f"unknown SM4 backend {backend!r}")
        # The backend's own methods, bound here: a small message costs well under a microsecond natively, and a
        # forwarding method would add a Python call to each.
        self.encrypt: Callable[..., bytes] = impl.encrypt
        self.decrypt: Callable[..., bytes] = impl.decrypt


def sm4_gcm_encrypt(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """One message under a key used once; callers that keep a key should keep an Sm4Gcm instead."""
    return Sm4Gcm(key).encrypt(plaintext, aad)


def sm4_gcm_decrypt(key: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    return Sm4Gcm(key).decrypt(blob, aad)


class FieldCipher:
    """Encrypts PII columns (SM4-GCM, versioned text form) and computes their blind index (HMAC-SM3).

    The column name is bound in as associated data, so a ciphertext moved to another column does not decrypt.
    """

    _VERSION = "sm4g1:"

    def __init__(self, key_hex: str, index_key_hex: str) -> None:
        key = bytes.fromhex(key_hex)
        self._index_key = bytes.fromhex(index_key_hex)
        if len(key) != 16:
            raise ValueError("the SM4 key must be 16 bytes (32 hex digits)")
        self._sm4 = Sm4Gcm(key)

    def encrypt(self, column: str, value: str | None) -> str | None:
        if value is None:
            return None
        blob = self._sm4.encrypt(value.encode(), column.encode())
        return self._VERSION + base64.b64encode(blob).decode()

    def decrypt(self, column: str, token: str | None) -> str | None:
        if token is None:
            return None
        if not token.startswith(self._VERSION):
            raise ValueError("unknown ciphertext version")
        blob = base64.b64decode(token[len(self._VERSION) :])
        return self._sm4.decrypt(blob, column.encode()).decode()

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


def mask_email(value: str | None) -> str | None:
    """Show the first character of the mailbox and the domain, e.g. z***@hospital.cn."""
    if value is None:
        return None
    local, at, domain = value.rpartition("@")
    if not at:
        return mask(value)
    return f"{local[:1]}***@{domain}"

"""SM2 (GB/T 32918) for the whole product: signatures with a signer ID, public-key encryption, key storage.

Two backends sit behind one interface. The OpenSSL backend (the system libcrypto 3 through ctypes) is used
whenever that library has SM2; the pure-Python backend is the fallback for hosts where it does not (it uses a
CSPRNG and checks C3 on decryption, unlike `gmssl`, but is not constant-time). A key keeps the backend that made
it, and both backends read and write the same PEM (PKCS#8, SubjectPublicKeyInfo) and raw formats, so keys move
between them freely. Tests pin a backend with `use_backend`.

Formats: signatures are DER SEQUENCE {r, s} (`signature_to_raw`/`signature_from_raw` convert to and from r‖s);
ciphertexts are C1‖C3‖C2 with C1 = 04‖x‖y (`ciphertext_to_der`/`ciphertext_from_der` convert to and from the
GM/T 0009 DER that OpenSSL and some partners use). Signing hashes Z_A‖data with SM3 itself: pass the data, not a
digest.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

from core.crypto import _sm2_asn1, _sm2_curve
from core.crypto._sm2_openssl import OpenSslBackend
from core.crypto._sm2_python import PythonBackend

__all__ = [
    "DEFAULT_SIGNER_ID",
    "DecryptionError",
    "InvalidSignature",
    "Sm2PrivateKey",
    "Sm2PublicKey",
    "available_backends",
    "backend_name",
    "ciphertext_from_der",
    "ciphertext_to_der",
    "signature_from_raw",
    "signature_to_raw",
    "use_backend",
]

DEFAULT_SIGNER_ID = b"1234567812345678"
# ENTL_A holds the ID's bit length in 16 bits, which allows 8191 bytes, but OpenSSL refuses IDs of 8191 bytes or
# more; one limit for both backends keeps a signature that one makes verifiable by the other.
_MAX_SIGNER_ID = 8190

signature_to_raw = _sm2_asn1.signature_to_raw
signature_from_raw = _sm2_asn1.signature_from_raw
ciphertext_to_der = _sm2_asn1.ciphertext_to_der
ciphertext_from_der = _sm2_asn1.ciphertext_from_der


class InvalidSignature(Exception):
    """The signature does not match the data, the signer ID or the key (or is not a DER signature at all)."""


class DecryptionError(Exception):
    """The ciphertext is malformed, was altered, or was made for another key."""


class _PublicImpl(Protocol):
    def to_pem(self) -> bytes: ...
    def to_bytes(self) -> bytes: ...
    def verify(self, signature: bytes, data: bytes, signer_id: bytes) -> bool: ...
    def encrypt(self, plaintext: bytes) -> bytes: ...


class _PrivateImpl(Protocol):
    def to_pem(self, password: bytes | None) -> bytes: ...
    def to_bytes(self) -> bytes: ...
    def public_key(self) -> _PublicImpl: ...
    def sign(self, data: bytes, signer_id: bytes) -> bytes: ...
    def decrypt(self, ciphertext: bytes) -> bytes | None: ...


class _Backend(Protocol):
    name: str

    def generate(self) -> _PrivateImpl: ...
    def private_from_pem(self, data: bytes, password: bytes | None) -> _PrivateImpl: ...
    def private_from_bytes(self, d: bytes) -> _PrivateImpl: ...
    def public_from_pem(self, data: bytes) -> _PublicImpl: ...
    def public_from_bytes(self, data: bytes) -> _PublicImpl: ...


def _load_openssl() -> tuple[_Backend | None, str]:
    try:
        return OpenSslBackend.load(), ""
    except OSError as exc:
        return None, str(exc)


_OPENSSL, _OPENSSL_PROBLEM = _load_openssl()
# In order of preference: the first one is the default.
_BACKENDS: dict[str, _Backend] = {} if _OPENSSL is None else {"openssl": _OPENSSL}
_BACKENDS["python"] = PythonBackend()
_PREFERRED = next(iter(_BACKENDS.values()))
_active: ContextVar[_Backend] = ContextVar("sm2_backend", default=_PREFERRED)


def backend_name() -> str:
    """The backend new keys get here: "openssl" or "python"."""
    return _active.get().name


def available_backends() -> tuple[str, ...]:
    """The usable backends, preferred first."""
    return tuple(_BACKENDS)


@contextmanager
def use_backend(name: str) -> Iterator[None]:
    """New keys made inside the block use this backend ("openssl" or "python"); keys made before keep theirs."""
    backend = _BACKENDS.get(name)
    if backend is None:
        reason = _OPENSSL_PROBLEM if name == "openssl" else "unknown backend"
        raise ValueError(f"SM2 backend {name!r} is not available: {reason}")
    token = _active.set(backend)
    try:
        yield
    finally:
        _active.reset(token)


def _check_signer_id(signer_id: bytes) -> None:
    if len(signer_id) > _MAX_SIGNER_ID:
        raise ValueError(f"an SM2 signer ID is at most {_MAX_SIGNER_ID} bytes")


class Sm2PublicKey:
    """An SM2 public key; get one from `from_pem`, `from_bytes` or `Sm2PrivateKey.public_key()`."""

    __slots__ = ("_impl",)

    def __init__(self, impl: _PublicImpl) -> None:
        self._impl = impl

    @classmethod
    def from_pem(cls, data: bytes) -> Sm2PublicKey:
        """A "PUBLIC KEY" (SubjectPublicKeyInfo) PEM block with id-ecPublicKey and the sm2p256v1 curve."""
        return cls(_active.get().public_from_pem(data))

    @classmethod
    def from_bytes(cls, data: bytes) -> Sm2PublicKey:
        """04‖x‖y, or x‖y (64 bytes) as some partners send it, or compressed 02/03‖x; the point must be on the curve."""
        if len(data) == 2 * _sm2_curve.SIZE:
            data = b"\x04" + data
        return cls(_active.get().public_from_bytes(data))

    def to_pem(self) -> bytes:
        return self._impl.to_pem()

    def to_bytes(self) -> bytes:
        """04‖x‖y, 65 bytes."""
        return self._impl.to_bytes()

    def verify(self, signature: bytes, data: bytes, signer_id: bytes = DEFAULT_SIGNER_ID) -> None:
        """Raises InvalidSignature unless signature (DER) is the signer's over SM3(Z_A‖data)."""
        _check_signer_id(signer_id)
        if not self._impl.verify(signature, data, signer_id):
            raise InvalidSignature("the SM2 signature does not match the data, the signer ID or the key")

    def encrypt(self, plaintext: bytes) -> bytes:
        """C1‖C3‖C2 with C1 uncompressed: 97 bytes longer than the plaintext."""
        if not plaintext:
            raise ValueError("SM2 cannot encrypt an empty message")
        return self._impl.encrypt(plaintext)


class Sm2PrivateKey:
    """An SM2 private key; get one from `generate`, `from_pem` or `from_bytes`."""

    __slots__ = ("_impl",)

    def __init__(self, impl: _PrivateImpl) -> None:
        self._impl = impl

    @classmethod
    def generate(cls) -> Sm2PrivateKey:
        return cls(_active.get().generate())

    @classmethod
    def from_pem(cls, data: bytes, password: bytes | None = None) -> Sm2PrivateKey:
        """A "PRIVATE KEY" (PKCS#8) PEM block, or "ENCRYPTED PRIVATE KEY" with its password (OpenSSL backend)."""
        return cls(_active.get().private_from_pem(data, password))

    @classmethod
    def from_bytes(cls, d: bytes) -> Sm2PrivateKey:
        """The 32-byte big-endian scalar d, 1 ≤ d ≤ n−2."""
        return cls(_active.get().private_from_bytes(d))

    @classmethod
    def from_seed(cls, seed: bytes) -> Sm2PrivateKey:
        """A key derived from secret seed material (e.g. an HMAC of a master secret): the same seed, the same key.
        The seed should carry at least 256 bits of entropy; it is reduced into 1 ≤ d ≤ n−2."""
        d = int.from_bytes(seed, "big") % (_sm2_curve.N - 2) + 1
        return cls.from_bytes(d.to_bytes(_sm2_curve.SIZE, "big"))

    def to_pem(self, password: bytes | None = None) -> bytes:
        """PKCS#8 PEM; with a password, PBES2/AES-256-CBC encrypted (OpenSSL backend only: NotImplementedError)."""
        return self._impl.to_pem(password)

    def to_bytes(self) -> bytes:
        return self._impl.to_bytes()

    def public_key(self) -> Sm2PublicKey:
        return Sm2PublicKey(self._impl.public_key())

    def sign(self, data: bytes, signer_id: bytes = DEFAULT_SIGNER_ID) -> bytes:
        """DER SEQUENCE {r, s} over SM3(Z_A‖data), with a fresh random nonce."""
        _check_signer_id(signer_id)
        return self._impl.sign(data, signer_id)

    def decrypt(self, ciphertext: bytes) -> bytes:
        """The plaintext of C1‖C3‖C2; DecryptionError if C1 is not on the curve or C3 does not match."""
        if len(ciphertext) <= _sm2_curve.CIPHERTEXT_OVERHEAD:
            raise DecryptionError("an SM2 ciphertext is C1 (65 bytes) ‖ C3 (32 bytes) ‖ C2 (at least 1 byte)")
        try:
            # One strict check for both backends: C1 must be 04‖x‖y with x, y < p and on the curve.
            _sm2_curve.decode_point(ciphertext[: _sm2_curve.POINT_SIZE])
        except ValueError as exc:
            raise DecryptionError("C1 of the SM2 ciphertext is not a point on the curve") from exc
        plaintext = self._impl.decrypt(ciphertext)
        if plaintext is None:
            raise DecryptionError("the SM2 ciphertext was altered or is for another key")
        return plaintext

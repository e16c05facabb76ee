"""The SM2 backend over OpenSSL 3's libcrypto, bound with ctypes.

Signatures use EVP_DigestSign/EVP_DigestVerify with EVP_sm3() and the signer ID set by EVP_PKEY_CTX_set1_id, so
OpenSSL computes Z_A itself. Encryption uses EVP_PKEY_encrypt/decrypt, whose GM/T 0009 DER ciphertext is converted
to and from C1‖C3‖C2 here. Keys are stored with OSSL_ENCODER/OSSL_DECODER and imported with EVP_PKEY_fromdata.
Every OpenSSL object is freed on every path: temporaries by context managers, keys by a finalizer on their owner.
"""

from __future__ import annotations

import ctypes
import sys
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from core.crypto import _sm2_asn1 as asn1
from core.crypto import _sm2_curve as curve
from core.crypto._libcrypto import library_candidates as _library_candidates

_P = ctypes.c_void_p
_STR = ctypes.c_char_p
_INT = ctypes.c_int
_SIZE = ctypes.c_size_t
_SIZE_P = ctypes.POINTER(ctypes.c_size_t)

# OSSL_PARAM data types and EVP_PKEY selections, from openssl/core.h and openssl/evp.h.
_UNSIGNED_INTEGER = 2
_UTF8_STRING = 4
_OCTET_STRING = 5
_PUBLIC_KEY = 0x86
_KEYPAIR = 0x87

_GROUP = b"SM2"  # the curve's name for EVP_PKEY_fromdata
_MAX_SIGNATURE = 72  # DER of two 256-bit INTEGERs, each possibly with a leading zero byte
# PBES2 with AES-256-CBC is what `openssl pkcs8 -topk8` writes by default and what partners' tooling reads.
_PEM_CIPHER = b"AES-256-CBC"


class _OsslParam(ctypes.Structure):
    _fields_ = (
        ("key", _STR),
        ("data_type", ctypes.c_uint),
        ("data", _P),
        ("data_size", _SIZE),
        ("return_size", _SIZE),
    )


_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "ERR_get_error": (ctypes.c_ulong, []),
    "ERR_error_string_n": (None, [ctypes.c_ulong, _STR, _SIZE]),
    "CRYPTO_free": (None, [_P, _STR, _INT]),
    "EVP_sm3": (_P, []),
    "EVP_PKEY_free": (None, [_P]),
    "EVP_PKEY_is_a": (_INT, [_P, _STR]),
    "EVP_PKEY_get_params": (_INT, [_P, ctypes.POINTER(_OsslParam)]),
    "EVP_PKEY_get_octet_string_param": (_INT, [_P, _STR, _STR, _SIZE, _SIZE_P]),
    "EVP_PKEY_CTX_new_from_name": (_P, [_P, _STR, _STR]),
    "EVP_PKEY_CTX_new_from_pkey": (_P, [_P, _P, _STR]),
    "EVP_PKEY_CTX_free": (None, [_P]),
    "EVP_PKEY_CTX_set1_id": (_INT, [_P, _STR, _INT]),
    "EVP_PKEY_keygen_init": (_INT, [_P]),
    "EVP_PKEY_generate": (_INT, [_P, ctypes.POINTER(_P)]),
    "EVP_PKEY_fromdata_init": (_INT, [_P]),
    "EVP_PKEY_fromdata": (_INT, [_P, ctypes.POINTER(_P), _INT, ctypes.POINTER(_OsslParam)]),
    "EVP_PKEY_encrypt_init": (_INT, [_P]),
    "EVP_PKEY_encrypt": (_INT, [_P, _STR, _SIZE_P, _STR, _SIZE]),
    "EVP_PKEY_decrypt_init": (_INT, [_P]),
    "EVP_PKEY_decrypt": (_INT, [_P, _STR, _SIZE_P, _STR, _SIZE]),
    "EVP_MD_CTX_new": (_P, []),
    "EVP_MD_CTX_free": (None, [_P]),
    "EVP_MD_CTX_set_pkey_ctx": (None, [_P, _P]),
    "EVP_DigestSignInit": (_INT, [_P, _P, _P, _P, _P]),
    "EVP_DigestSign": (_INT, [_P, _STR, _SIZE_P, _STR, _SIZE]),
    "EVP_DigestVerifyInit": (_INT, [_P, _P, _P, _P, _P]),
    "EVP_DigestVerify": (_INT, [_P, _STR, _SIZE, _STR, _SIZE]),
    "OSSL_ENCODER_CTX_new_for_pkey": (_P, [_P, _INT, _STR, _STR, _STR]),
    "OSSL_ENCODER_CTX_set_cipher": (_INT, [_P, _STR, _STR]),
    "OSSL_ENCODER_CTX_set_passphrase": (_INT, [_P, _STR, _SIZE]),
    "OSSL_ENCODER_to_data": (_INT, [_P, ctypes.POINTER(_P), _SIZE_P]),
    "OSSL_ENCODER_CTX_free": (None, [_P]),
    "OSSL_DECODER_CTX_new_for_pkey": (_P, [ctypes.POINTER(_P), _STR, _STR, _STR, _INT, _P, _STR]),
    "OSSL_DECODER_CTX_set_passphrase": (_INT, [_P, _STR, _SIZE]),
    "OSSL_DECODER_from_data": (_INT, [_P, ctypes.POINTER(_STR), _SIZE_P]),
    "OSSL_DECODER_CTX_free": (None, [_P]),
}


def _declare(lib: ctypes.CDLL) -> None:
    """Declare every C signature used here; raises AttributeError if the library lacks one (OpenSSL < 3)."""
    for name, (restype, argtypes) in _PROTOTYPES.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes


def _native(big_endian: bytes) -> bytes:
    """OSSL_PARAM unsigned integers are in the platform's byte order."""
    return big_endian[::-1] if sys.byteorder == "little" else big_endian


def _param_array(*entries: tuple[bytes, int, ctypes.Array[ctypes.c_char], int]) -> ctypes.Array[_OsslParam]:
    """An OSSL_PARAM list of (key, type, buffer, size) entries, ended by the all-zero terminator."""
    array = (_OsslParam * (len(entries) + 1))()
    for index, (key, kind, buffer, size) in enumerate(entries):
        array[index] = _OsslParam(key, kind, ctypes.cast(buffer, _P), size, 0)
    return array


class _Pkey:
    """Owns one EVP_PKEY, freed when the last Python reference to its owner goes."""

    __slots__ = ("__weakref__", "ptr")

    def __init__(self, lib: ctypes.CDLL, ptr: int) -> None:
        self.ptr = ptr
        weakref.finalize(self, lib.EVP_PKEY_free, ptr)


class OpenSslPublicKey:
    def __init__(self, backend: OpenSslBackend, pkey: _Pkey) -> None:
        self._backend = backend
        self._pkey = pkey

    def to_pem(self) -> bytes:
        return self._backend.to_pem(self._pkey, _PUBLIC_KEY, b"SubjectPublicKeyInfo", None)

    def to_bytes(self) -> bytes:
        return self._backend.public_bytes(self._pkey)

    def verify(self, signature: bytes, data: bytes, signer_id: bytes) -> bool:
        return self._backend.verify(self._pkey, signature, data, signer_id)

    def encrypt(self, plaintext: bytes) -> bytes:
        return self._backend.encrypt(self._pkey, plaintext)


class OpenSslPrivateKey:
    def __init__(self, backend: OpenSslBackend, pkey: _Pkey) -> None:
        self._backend = backend
        self._pkey = pkey

    def to_pem(self, password: bytes | None) -> bytes:
        return self._backend.to_pem(self._pkey, _KEYPAIR, b"PrivateKeyInfo", password)

    def to_bytes(self) -> bytes:
        return self._backend.private_bytes(self._pkey)

    def public_key(self) -> OpenSslPublicKey:
        # A public-only EVP_PKEY, so handing the public key around does not keep the private scalar alive.
        return self._backend.public_from_bytes(self._backend.public_bytes(self._pkey))

    def sign(self, data: bytes, signer_id: bytes) -> bytes:
        return self._backend.sign(self._pkey, data, signer_id)

    def decrypt(self, ciphertext: bytes) -> bytes | None:
        return self._backend.decrypt(self._pkey, ciphertext)


class OpenSslBackend:
    name = "openssl"

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self._sm3: int | None = lib.EVP_sm3()

    @classmethod
    def load(cls) -> OpenSslBackend:
        """The backend over the first libcrypto that has SM2; OSError says why there is none."""
        problems = []
        for name in _library_candidates():
            try:
                lib = ctypes.CDLL(name)
                _declare(lib)
            except (OSError, AttributeError) as exc:
                problems.append(f"{name}: {exc}")
                continue
            backend = cls(lib)
            if backend._has_sm2():
                return backend
            problems.append(f"{name}: no SM2 or SM3 in this build")
        raise OSError("no usable libcrypto 3 with SM2 (" + ("; ".join(problems) or "libcrypto 3 not found") + ")")

    def _has_sm2(self) -> bool:
        ctx = self._lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None)
        self._lib.EVP_PKEY_CTX_free(ctx)
        self._reasons()
        return bool(ctx and self._sm3)

    # Errors and ownership.

    def _reasons(self) -> str:
        """OpenSSL's queued error reasons; reading them empties this thread's queue so no stale error leaks on."""
        reasons = []
        while code := self._lib.ERR_get_error():
            buffer = ctypes.create_string_buffer(256)
            self._lib.ERR_error_string_n(code, buffer, len(buffer))
            reasons.append(buffer.value.decode(errors="replace"))
        return "; ".join(reasons) or "no reason given"

    def _check(self, result: int, what: str, error: type[Exception] = RuntimeError) -> None:
        if result != 1:
            raise error(f"{what} failed: {self._reasons()}")

    @contextmanager
    def _owned(self, ptr: int | None, free: Callable[[int], None], what: str) -> Iterator[int]:
        if not ptr:
            raise RuntimeError(f"{what} failed: {self._reasons()}")
        try:
            yield ptr
        finally:
            free(ptr)

    def _own(self, out: ctypes.c_void_p) -> _Pkey:
        assert out.value, "OpenSSL reported success without a key"
        return _Pkey(self._lib, out.value)

    def _pkey_context(self, source: int | None, what: str) -> AbstractContextManager[int]:
        return self._owned(source, self._lib.EVP_PKEY_CTX_free, what)

    # Keys.

    def generate(self) -> OpenSslPrivateKey:
        lib = self._lib
        with self._pkey_context(lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None), "EVP_PKEY_CTX_new") as ctx:
            self._check(lib.EVP_PKEY_keygen_init(ctx), "EVP_PKEY_keygen_init")
            out = ctypes.c_void_p()
            self._check(lib.EVP_PKEY_generate(ctx, ctypes.byref(out)), "EVP_PKEY_generate")
            return OpenSslPrivateKey(self, self._own(out))

    def private_from_bytes(self, d: bytes) -> OpenSslPrivateKey:
        scalar = curve.private_scalar(d)
        # EVP_PKEY_fromdata in OpenSSL 3.0 does not derive the public point, and Z_A needs it.
        public = ctypes.create_string_buffer(curve.encode_point(curve.public_point(scalar)))
        group = ctypes.create_string_buffer(_GROUP)
        secret = ctypes.create_string_buffer(_native(d))
        try:
            params = _param_array(
                (b"group", _UTF8_STRING, group, len(_GROUP)),
                (b"priv", _UNSIGNED_INTEGER, secret, curve.SIZE),
                (b"pub", _OCTET_STRING, public, curve.POINT_SIZE),
            )
            return OpenSslPrivateKey(self, self._from_params(params, _KEYPAIR))
        finally:
            ctypes.memset(secret, 0, len(secret))

    def public_from_bytes(self, data: bytes) -> OpenSslPublicKey:
        public = ctypes.create_string_buffer(curve.encode_point(curve.decode_point(data)))
        group = ctypes.create_string_buffer(_GROUP)
        params = _param_array(
            (b"group", _UTF8_STRING, group, len(_GROUP)), (b"pub", _OCTET_STRING, public, curve.POINT_SIZE)
        )
        return OpenSslPublicKey(self, self._from_params(params, _PUBLIC_KEY))

    def _from_params(self, params: ctypes.Array[_OsslParam], selection: int) -> _Pkey:
        lib = self._lib
        with self._pkey_context(lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None), "EVP_PKEY_CTX_new") as ctx:
            self._check(lib.EVP_PKEY_fromdata_init(ctx), "EVP_PKEY_fromdata_init")
            out = ctypes.c_void_p()
            self._check(
                lib.EVP_PKEY_fromdata(ctx, ctypes.byref(out), selection, params), "EVP_PKEY_fromdata", ValueError
            )
            return self._own(out)

    def private_from_pem(self, data: bytes, password: bytes | None) -> OpenSslPrivateKey:
        return OpenSslPrivateKey(self, self._from_pem(data, _KEYPAIR, password, "private key"))

    def public_from_pem(self, data: bytes) -> OpenSslPublicKey:
        return OpenSslPublicKey(self, self._from_pem(data, _PUBLIC_KEY, None, "public key"))

    def _from_pem(self, data: bytes, selection: int, password: bytes | None, what: str) -> _Pkey:
        lib = self._lib
        out = ctypes.c_void_p()
        decoder = lib.OSSL_DECODER_CTX_new_for_pkey(ctypes.byref(out), b"PEM", None, None, selection, None, None)
        with self._owned(decoder, lib.OSSL_DECODER_CTX_free, "OSSL_DECODER_CTX_new_for_pkey") as ctx:
            if password is not None:
                self._check(lib.OSSL_DECODER_CTX_set_passphrase(ctx, password, len(password)), "set_passphrase")
            cursor, remaining = ctypes.c_char_p(data), ctypes.c_size_t(len(data))
            found = lib.OSSL_DECODER_from_data(ctx, ctypes.byref(cursor), ctypes.byref(remaining))
            self._check(found, f"reading an SM2 {what} from PEM (wrong format or password?)", ValueError)
        pkey = self._own(out)
        if lib.EVP_PKEY_is_a(pkey.ptr, b"SM2") != 1:
            raise ValueError(f"the PEM holds a {what} for another algorithm than SM2")
        return pkey

    def to_pem(self, pkey: _Pkey, selection: int, structure: bytes, password: bytes | None) -> bytes:
        lib = self._lib
        encoder = lib.OSSL_ENCODER_CTX_new_for_pkey(pkey.ptr, selection, b"PEM", structure, None)
        with self._owned(encoder, lib.OSSL_ENCODER_CTX_free, "OSSL_ENCODER_CTX_new_for_pkey") as ctx:
            if password is not None:
                self._check(lib.OSSL_ENCODER_CTX_set_cipher(ctx, _PEM_CIPHER, None), "OSSL_ENCODER_CTX_set_cipher")
                self._check(lib.OSSL_ENCODER_CTX_set_passphrase(ctx, password, len(password)), "set_passphrase")
            out, size = ctypes.c_void_p(), ctypes.c_size_t()
            self._check(lib.OSSL_ENCODER_to_data(ctx, ctypes.byref(out), ctypes.byref(size)), "OSSL_ENCODER_to_data")
        try:
            return ctypes.string_at(out, size.value)
        finally:
            lib.CRYPTO_free(out, None, 0)

    def private_bytes(self, pkey: _Pkey) -> bytes:
        secret = ctypes.create_string_buffer(curve.SIZE)
        try:
            params = _param_array((b"priv", _UNSIGNED_INTEGER, secret, curve.SIZE))
            self._check(self._lib.EVP_PKEY_get_params(pkey.ptr, params), "EVP_PKEY_get_params(priv)")
            return _native(secret.raw)
        finally:
            ctypes.memset(secret, 0, len(secret))

    def public_bytes(self, pkey: _Pkey) -> bytes:
        point, size = ctypes.create_string_buffer(curve.POINT_SIZE), ctypes.c_size_t()
        found = self._lib.EVP_PKEY_get_octet_string_param(pkey.ptr, b"pub", point, len(point), ctypes.byref(size))
        self._check(found, "EVP_PKEY_get_octet_string_param(pub)")
        # A key read from a compressed-point PEM reports its point compressed; the API promises 04‖x‖y.
        return curve.encode_point(curve.decode_point(point.raw[: size.value]))

    # Operations.

    @contextmanager
    def _digest_context(self, pkey: _Pkey, signer_id: bytes) -> Iterator[int]:
        """An EVP_MD_CTX whose EVP_PKEY_CTX carries the signer ID, ready for EVP_Digest{Sign,Verify}Init."""
        lib = self._lib
        with (
            self._pkey_context(lib.EVP_PKEY_CTX_new_from_pkey(None, pkey.ptr, None), "EVP_PKEY_CTX_new") as pctx,
            self._owned(lib.EVP_MD_CTX_new(), lib.EVP_MD_CTX_free, "EVP_MD_CTX_new") as md,
        ):
            self._check(lib.EVP_PKEY_CTX_set1_id(pctx, signer_id, len(signer_id)), "EVP_PKEY_CTX_set1_id")
            # The EVP_MD_CTX borrows pctx (it will not free it), so pctx is freed after md, by the outer manager.
            lib.EVP_MD_CTX_set_pkey_ctx(md, pctx)
            yield md

    def sign(self, pkey: _Pkey, data: bytes, signer_id: bytes) -> bytes:
        lib = self._lib
        with self._digest_context(pkey, signer_id) as md:
            self._check(lib.EVP_DigestSignInit(md, None, self._sm3, None, pkey.ptr), "EVP_DigestSignInit")
            signature, size = ctypes.create_string_buffer(_MAX_SIGNATURE), ctypes.c_size_t(_MAX_SIGNATURE)
            self._check(lib.EVP_DigestSign(md, signature, ctypes.byref(size), data, len(data)), "EVP_DigestSign")
            return signature.raw[: size.value]

    def verify(self, pkey: _Pkey, signature: bytes, data: bytes, signer_id: bytes) -> bool:
        lib = self._lib
        with self._digest_context(pkey, signer_id) as md:
            self._check(lib.EVP_DigestVerifyInit(md, None, self._sm3, None, pkey.ptr), "EVP_DigestVerifyInit")
            valid = lib.EVP_DigestVerify(md, signature, len(signature), data, len(data)) == 1
        if not valid:
            self._reasons()
        return valid

    def encrypt(self, pkey: _Pkey, plaintext: bytes) -> bytes:
        lib = self._lib
        der = self._crypt(pkey, lib.EVP_PKEY_encrypt_init, lib.EVP_PKEY_encrypt, plaintext)
        if der is None:
            raise RuntimeError(f"EVP_PKEY_encrypt failed: {self._reasons()}")
        return asn1.ciphertext_from_der(der)

    def decrypt(self, pkey: _Pkey, ciphertext: bytes) -> bytes | None:
        lib = self._lib
        plaintext = self._crypt(
            pkey, lib.EVP_PKEY_decrypt_init, lib.EVP_PKEY_decrypt, asn1.ciphertext_to_der(ciphertext)
        )
        if plaintext is None:
            self._reasons()
        return plaintext

    def _crypt(self, pkey: _Pkey, init: Callable[[int], int], operation: Any, data: bytes) -> bytes | None:
        """EVP_PKEY_{en,de}crypt: ask for the output size, then run; None if OpenSSL refuses the data."""
        with self._pkey_context(self._lib.EVP_PKEY_CTX_new_from_pkey(None, pkey.ptr, None), "EVP_PKEY_CTX_new") as ctx:
            self._check(init(ctx), "EVP_PKEY_{en,de}crypt_init")
            size = ctypes.c_size_t()
            if operation(ctx, None, ctypes.byref(size), data, len(data)) != 1:
                return None
            out = ctypes.create_string_buffer(size.value)
            if operation(ctx, out, ctypes.byref(size), data, len(data)) != 1:
                return None
            return out.raw[: size.value]

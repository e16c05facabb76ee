"""Keyed AEAD (SM4-GCM) over OpenSSL's EVP interface, bound with ctypes.

Why: building a cipher context costs several microseconds (cipher fetch, key schedule, GHASH table), more than
sealing a small message. Here a key gets one EVP_CIPHER_CTX per thread, keyed once; each message only re-initialises
that context with its own IV (EVP_CipherInit_ex with no cipher and no key keeps both), feeds the AAD, the data, and
gets or sets the tag. Contexts are per thread because an EVP_CIPHER_CTX is not safe to share, and ctypes releases the
GIL during every call. The wire format is the one `cryptography` produces: nonce (12) ‖ ciphertext ‖ tag (16).

The cipher is named, not hard-wired: SM4-GCM in the product, and the same code runs any GCM cipher, which lets the
tests check it against `cryptography` with a cipher every libcrypto 3 has (AES-128-GCM) where SM4-GCM is absent
(OpenSSL 3.0 has SM4 but not SM4-GCM).
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from typing import Any

from core.crypto._libcrypto import library_candidates

NONCE = 12
TAG = 16
# EVP_CipherUpdate takes an int length; longer inputs go through in pieces of this size (a multiple of 16).
_CHUNK = 1 << 30
# From openssl/evp.h.
_CTRL_AEAD_GET_TAG = 0x10
_CTRL_AEAD_SET_TAG = 0x11

_P = ctypes.c_void_p
_INT = ctypes.c_int

_PROTOTYPES: dict[str, tuple[Any, list[Any] | None]] = {
    "ERR_clear_error": (None, []),
    "EVP_CIPHER_fetch": (_P, [_P, ctypes.c_char_p, ctypes.c_char_p]),
    "EVP_CIPHER_get_key_length": (_INT, [_P]),
    "EVP_CIPHER_CTX_new": (_P, []),
    "EVP_CIPHER_CTX_free": (None, [_P]),
    # The per-message calls have no argtypes on purpose: converting each argument costs about 0.2 µs, which doubled
    # the time of a small message. Every argument passed to them is therefore already a C-typed value: pointers as
    # c_void_p, ctypes buffers, bytes or None; lengths and flags as Python ints below 2**31 (passed as C int).
    "EVP_CipherInit_ex": (_INT, None),
    "EVP_CipherUpdate": (_INT, None),
    "EVP_CipherFinal_ex": (_INT, None),
    "EVP_CIPHER_CTX_ctrl": (_INT, None),
}


class _Library:
    """One libcrypto with the EVP cipher functions declared, and the named GCM ciphers fetched from it."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        for name, (restype, argtypes) in _PROTOTYPES.items():
            function = getattr(lib, name)  # AttributeError: not libcrypto 3
            function.restype = restype
            function.argtypes = argtypes
        self.lib = lib
        self._ciphers: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def cipher(self, name: bytes) -> int | None:
        """The fetched EVP_CIPHER, kept for the life of the process (one per name), or None if this build lacks it."""
        with self._lock:
            if name not in self._ciphers:
                fetched = self.lib.EVP_CIPHER_fetch(None, name, None)
                self.lib.ERR_clear_error()  # a failed fetch queues an error that must not surface elsewhere
                if not fetched:
                    return None
                self._ciphers[name] = fetched
            return self._ciphers[name]


def _load_library() -> tuple[_Library | None, str]:
    problems = []
    for name in library_candidates():
        try:
            return _Library(ctypes.CDLL(name)), ""
        except (OSError, AttributeError) as exc:
            problems.append(f"{name}: {exc}")
    return None, "; ".join(problems) or "libcrypto 3 not found"


_LIBRARY, _LIBRARY_PROBLEM = _load_library()


class _Context:
    """One EVP_CIPHER_CTX keyed once; freed when the thread that owns it ends or its key object goes."""

    __slots__ = ("__weakref__", "ptr", "written", "written_ref")

    def __init__(self, lib: ctypes.CDLL, cipher: int, key: bytes) -> None:
        ptr = lib.EVP_CIPHER_CTX_new()
        if not ptr:
            raise MemoryError("EVP_CIPHER_CTX_new failed")
        self.ptr = _P(ptr)
        weakref.finalize(self, lib.EVP_CIPHER_CTX_free, ptr)
        if lib.EVP_CipherInit_ex(self.ptr, _P(cipher), None, key, None, 1) != 1:
            lib.ERR_clear_error()
            raise ValueError("the cipher refused the key")
        # The out-length every EVP_CipherUpdate and EVP_CipherFinal_ex call writes; made once, not per call.
        self.written = _INT()
        self.written_ref = ctypes.byref(self.written)


class EvpGcm:
    """nonce ‖ ciphertext ‖ tag under one key, with a fresh random 96-bit nonce per message."""

    __slots__ = ("_cipher", "_key", "_lib", "_local")

    def __init__(self, key: bytes, cipher_name: bytes = b"SM4-GCM") -> None:
        if _LIBRARY is None:
            raise OSError(f"no usable libcrypto 3 ({_LIBRARY_PROBLEM})")
        cipher = _LIBRARY.cipher(cipher_name)
        if cipher is None:
            raise OSError(f"this libcrypto has no {cipher_name.decode()}")
        lib = _LIBRARY.lib
        key_length = lib.EVP_CIPHER_get_key_length(cipher)
        if len(key) != key_length:
            raise ValueError(f"{cipher_name.decode()} needs a {key_length}-byte key")
        self._lib = lib
        self._cipher = cipher
        self._key = bytes(key)
        self._local = threading.local()

    def _context(self) -> _Context:
        context: _Context | None = getattr(self._local, "context", None)
        if context is None:
            context = self._local.context = _Context(self._lib, self._cipher, self._key)
        return context

    def _fail(self, what: str, error: type[Exception] = RuntimeError) -> Exception:
        self._lib.ERR_clear_error()  # so the queued reasons do not surface in an unrelated OpenSSL call later
        return error(what)

    def _run(
        self, context: _Context, encrypt: int, nonce: bytes, aad: bytes, data: bytes, out: ctypes.Array[ctypes.c_char]
    ) -> None:
        """Starts a message with its own IV on the keyed context, then feeds the AAD and the data (into out)."""
        lib, ctx, written = self._lib, context.ptr, context.written_ref
        if lib.EVP_CipherInit_ex(ctx, None, None, None, nonce, encrypt) != 1:
            raise self._fail("EVP_CipherInit_ex refused a new IV")
        if aad and lib.EVP_CipherUpdate(ctx, None, written, aad, len(aad)) != 1:
            raise self._fail("EVP_CipherUpdate refused the associated data")
        if len(data) <= _CHUNK:
            if data and lib.EVP_CipherUpdate(ctx, out, written, data, len(data)) != 1:
                raise self._fail("EVP_CipherUpdate failed")
            return
        source = ctypes.c_char_p(data)  # keeps data alive; its address plus an offset feeds each piece
        start = ctypes.cast(source, _P).value or 0
        for offset in range(0, len(data), _CHUNK):
            size = min(_CHUNK, len(data) - offset)
            if lib.EVP_CipherUpdate(ctx, ctypes.byref(out, offset), written, _P(start + offset), size) != 1:
                raise self._fail("EVP_CipherUpdate failed")

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        context = self._context()
        lib, ctx, size = self._lib, context.ptr, len(plaintext)
        nonce = os.urandom(NONCE)
        out = ctypes.create_string_buffer(size + TAG)
        self._run(context, 1, nonce, aad, plaintext, out)
        tag = ctypes.byref(out, size)
        if lib.EVP_CipherFinal_ex(ctx, tag, context.written_ref) != 1:
            raise self._fail("EVP_CipherFinal_ex failed")
        if lib.EVP_CIPHER_CTX_ctrl(ctx, _CTRL_AEAD_GET_TAG, TAG, tag) != 1:
            raise self._fail("getting the GCM tag failed")
        return nonce + out.raw

    def decrypt(self, blob: bytes, aad: bytes = b"") -> bytes:
        """The plaintext; ValueError if the blob was altered, the AAD differs or the key is wrong."""
        if len(blob) < NONCE + TAG:
            raise ValueError("ciphertext too short")
        context = self._context()
        lib, ctx = self._lib, context.ptr
        body = blob[NONCE:-TAG]
        out = ctypes.create_string_buffer(len(body))
        self._run(context, 0, blob[:NONCE], aad, body, out)
        if lib.EVP_CIPHER_CTX_ctrl(ctx, _CTRL_AEAD_SET_TAG, TAG, blob[-TAG:]) != 1:
            raise self._fail("EVP_CIPHER_CTX_ctrl refused the tag")
        if lib.EVP_CipherFinal_ex(ctx, out, context.written_ref) != 1:  # GCM writes nothing here
            ctypes.memset(out, 0, len(body))  # nothing of an unauthenticated plaintext lingers
            raise self._fail("ciphertext was altered or the key is wrong", ValueError)
        return out.raw


def has_cipher(cipher_name: bytes) -> tuple[bool, str]:
    """Whether the system libcrypto has this cipher, and if not, why."""
    if _LIBRARY is None:
        return False, f"no usable libcrypto 3 ({_LIBRARY_PROBLEM})"
    if _LIBRARY.cipher(cipher_name) is None:
        return False, f"this libcrypto has no {cipher_name.decode()}"
    return True, ""

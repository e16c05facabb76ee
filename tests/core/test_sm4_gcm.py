"""Keyed SM4-GCM (core.crypto.sm.Sm4Gcm) on every available backend, and the EVP engine behind the OpenSSL one.
The native backend's own properties (nonces, fork, buffers) are in test_sm4_native.py.

The EVP engine is cipher-agnostic. Where the system libcrypto lacks SM4-GCM (OpenSSL 3.0 has SM4 but not its GCM
mode) the same engine is driven with AES-128-GCM, which every libcrypto 3 has, against `cryptography`'s AESGCM and the
GCM paper's vectors: context reuse with a new IV per message, AAD, tag get/set, long inputs and threads are then proven
on the code the SM4 backend runs. Where libcrypto has SM4-GCM, the interop tests below also cover it.
"""

from __future__ import annotations

import base64
import ctypes
import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.crypto import _sm4_openssl
from core.crypto.sm import SM4_BACKENDS, FieldCipher, Sm4Gcm, sm4_gcm_decrypt, sm4_gcm_encrypt

# RFC 8998 Appendix A.1: SM4-GCM (the block cipher is GB/T 32907's SM4; its key is the standard's example key).
SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
SM4_IV = bytes.fromhex("00001234567800000000abcd")
SM4_AAD = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
SM4_PLAINTEXT = bytes.fromhex(
    "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd"
    "eeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa"
)
SM4_CIPHERTEXT = bytes.fromhex(
    "17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735"
    "d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d"
)
SM4_TAG = bytes.fromhex("83de3541e4c2b58177e065a9bf7b62ec")

# McGrew & Viega, "The Galois/Counter Mode of Operation", test case 4 (AES-128, 60-byte plaintext, 20-byte AAD).
AES_KEY = bytes.fromhex("feffe9928665731c6d6a8f9467308308")
AES_IV = bytes.fromhex("cafebabefacedbaddecaf888")
AES_AAD = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
AES_PLAINTEXT = bytes.fromhex(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
)
AES_CIPHERTEXT = bytes.fromhex(
    "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
    "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
)
AES_TAG = bytes.fromhex("5bc94fbc3221a5db94fae95ae7121a47")

# Empty, shorter than a block, exactly a block, ragged, and long enough for several GHASH chunks.
SIZES = (0, 1, 15, 16, 17, 64, 1000, 70_000)


def fixed_nonce(monkeypatch: pytest.MonkeyPatch, nonce: bytes) -> None:
    monkeypatch.setattr(os, "urandom", lambda size: nonce[:size])


# --- Sm4Gcm, the product's interface, on each backend ---


# The backends that draw each nonce with os.urandom, so a test can fix it; the native one counts its own (its sealing is
# checked byte for byte against `cryptography` in test_sm4_native.py).
RANDOM_NONCE_BACKENDS = [backend for backend in SM4_BACKENDS if backend != "native"]


@pytest.mark.parametrize("backend", RANDOM_NONCE_BACKENDS)
def test_rfc8998_vector_seals_to_the_published_bytes(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sm4 = Sm4Gcm(SM4_KEY, backend)
    fixed_nonce(monkeypatch, SM4_IV)
    assert sm4.encrypt(SM4_PLAINTEXT, SM4_AAD) == SM4_IV + SM4_CIPHERTEXT + SM4_TAG


@pytest.mark.parametrize("backend", SM4_BACKENDS)
def test_rfc8998_vector_opens(backend: str) -> None:
    assert Sm4Gcm(SM4_KEY, backend).decrypt(SM4_IV + SM4_CIPHERTEXT + SM4_TAG, SM4_AAD) == SM4_PLAINTEXT


@pytest.mark.parametrize(("sealer", "opener"), list(itertools.product(SM4_BACKENDS, repeat=2)))
@pytest.mark.parametrize("size", SIZES)
def test_each_backend_opens_what_each_sealed(sealer: str, opener: str, size: int) -> None:
    key, plaintext, aad = os.urandom(16), os.urandom(size), os.urandom(size % 23)
    blob = Sm4Gcm(key, sealer).encrypt(plaintext, aad)
    assert len(blob) == 12 + size + 16
    assert Sm4Gcm(key, opener).decrypt(blob, aad) == plaintext


@pytest.mark.parametrize("backend", SM4_BACKENDS)
def test_one_key_object_seals_many_messages_with_fresh_nonces(backend: str) -> None:
    sm4 = Sm4Gcm(os.urandom(16), backend)
    blobs = [sm4.encrypt(b"same message", b"aad") for _ in range(50)]
    assert len({blob[:12] for blob in blobs}) == 50
    assert {sm4.decrypt(blob, b"aad") for blob in blobs} == {b"same message"}


@pytest.mark.parametrize("backend", SM4_BACKENDS)
def test_altered_blob_other_aad_or_other_key_is_refused(backend: str) -> None:
    key = os.urandom(16)
    sm4 = Sm4Gcm(key, backend)
    blob = sm4.encrypt(b"13800138000", b"patients.phone")
    for position in (0, 12, len(blob) - 1):  # the nonce, the body, the tag
        altered = bytearray(blob)
        altered[position] ^= 0x01
        with pytest.raises(ValueError, match="altered"):
            sm4.decrypt(bytes(altered), b"patients.phone")
    with pytest.raises(ValueError, match="altered"):
        sm4.decrypt(blob, b"patients.name")
    with pytest.raises(ValueError, match="altered"):
        Sm4Gcm(bytes(b ^ 1 for b in key), backend).decrypt(blob, b"patients.phone")
    with pytest.raises(ValueError, match="too short"):
        sm4.decrypt(blob[:27], b"patients.phone")
    # A refusal leaves the object usable.
    assert sm4.decrypt(blob, b"patients.phone") == b"13800138000"


def test_bad_keys_and_unknown_backends_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Sm4Gcm(bytes(15))
    with pytest.raises(ValueError, match="unknown SM4 backend"):
        Sm4Gcm(bytes(16), "tongsuo")


def test_openssl_backend_is_offered_exactly_when_libcrypto_has_sm4_gcm() -> None:
    available, reason = _sm4_openssl.has_cipher(b"SM4-GCM")
    assert SM4_BACKENDS[-1] == "cryptography"
    assert ("openssl" in SM4_BACKENDS) is available
    preferred = [backend for backend in ("openssl", "cryptography") if backend in SM4_BACKENDS]
    assert [backend for backend in SM4_BACKENDS if backend != "native"] == preferred
    if not available:
        with pytest.raises(ValueError, match="'openssl' is not available") as refusal:
            Sm4Gcm(bytes(16), "openssl")
        assert reason and reason in str(refusal.value)


def test_one_shot_helpers_and_field_cipher_share_the_wire_format() -> None:
    key = os.urandom(16)
    for backend in SM4_BACKENDS:
        assert sm4_gcm_decrypt(key, Sm4Gcm(key, backend).encrypt(b"x", b"a"), b"a") == b"x"
        assert Sm4Gcm(key, backend).decrypt(sm4_gcm_encrypt(key, b"y", b"a"), b"a") == b"y"
    fields = FieldCipher(key.hex(), os.urandom(32).hex())
    token = fields.encrypt("patients.phone", "13800138000")
    assert token is not None
    assert fields.decrypt("patients.phone", token) == "13800138000"
    blob = base64.b64decode(token.removeprefix("sm4g1:"))
    for backend in SM4_BACKENDS:
        assert Sm4Gcm(key, backend).decrypt(blob, b"patients.phone") == b"13800138000"
    # What cryptography's one-shot GCM makes, the product opens (nonce ‖ ciphertext ‖ tag, nothing else).
    nonce = os.urandom(12)
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(b"patients.phone")
    made = nonce + encryptor.update(b"13800138000") + encryptor.finalize() + encryptor.tag
    assert fields.decrypt("patients.phone", "sm4g1:" + base64.b64encode(made).decode()) == "13800138000"


# --- the EVP engine itself, with a GCM cipher every libcrypto 3 has ---


def test_evp_engine_seals_the_gcm_paper_vector(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _sm4_openssl.EvpGcm(AES_KEY, b"AES-128-GCM")
    fixed_nonce(monkeypatch, AES_IV)
    assert engine.encrypt(AES_PLAINTEXT, AES_AAD) == AES_IV + AES_CIPHERTEXT + AES_TAG
    assert engine.decrypt(AES_IV + AES_CIPHERTEXT + AES_TAG, AES_AAD) == AES_PLAINTEXT


@pytest.mark.parametrize("size", SIZES)
def test_evp_engine_and_cryptography_open_each_others_messages(size: int) -> None:
    key, plaintext, aad = os.urandom(16), os.urandom(size), os.urandom(size % 23)
    engine, reference = _sm4_openssl.EvpGcm(key, b"AES-128-GCM"), AESGCM(key)
    for _ in range(3):  # the same keyed context, re-initialised with a new IV each time
        blob = engine.encrypt(plaintext, aad)
        assert reference.decrypt(blob[:12], blob[12:], aad) == plaintext
        nonce = os.urandom(12)
        assert engine.decrypt(nonce + reference.encrypt(nonce, plaintext, aad), aad) == plaintext


def test_evp_engine_refusal_leaves_no_openssl_error_behind() -> None:
    engine = _sm4_openssl.EvpGcm(os.urandom(16), b"AES-128-GCM")
    blob = bytearray(engine.encrypt(b"payload", b"k1"))
    blob[-1] ^= 1
    with pytest.raises(ValueError, match="altered"):
        engine.decrypt(bytes(blob), b"k1")
    assert _sm4_openssl.has_cipher(b"NO-SUCH-GCM")[0] is False
    libcrypto = ctypes.CDLL("libcrypto.so.3")
    libcrypto.ERR_peek_error.restype = ctypes.c_ulong
    assert libcrypto.ERR_peek_error() == 0
    # A decryption after a refused one starts clean: the context takes the next IV and tag.
    blob[-1] ^= 1
    assert engine.decrypt(bytes(blob), b"k1") == b"payload"


def test_evp_engine_feeds_long_inputs_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    # EVP_CipherUpdate takes an int length; a smaller piece size runs the same loop that gigabyte inputs take.
    monkeypatch.setattr(_sm4_openssl, "_CHUNK", 48)
    key, plaintext = os.urandom(16), os.urandom(1000)
    engine, reference = _sm4_openssl.EvpGcm(key, b"AES-128-GCM"), AESGCM(key)
    blob = engine.encrypt(plaintext, b"aad")
    assert reference.decrypt(blob[:12], blob[12:], b"aad") == plaintext
    assert engine.decrypt(blob, b"aad") == plaintext


def test_evp_engine_is_safe_across_threads() -> None:
    key = os.urandom(16)
    engine, reference = _sm4_openssl.EvpGcm(key, b"AES-128-GCM"), AESGCM(key)
    messages = [os.urandom(size) for size in range(1, 400)]

    def round_trip(message: bytes) -> bool:
        blob = engine.encrypt(message, message[:5])
        return engine.decrypt(blob, message[:5]) == message == reference.decrypt(blob[:12], blob[12:], message[:5])

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(round_trip, messages * 5))


def test_evp_engine_checks_the_key_length_and_cipher() -> None:
    with pytest.raises(ValueError, match="16-byte key"):
        _sm4_openssl.EvpGcm(bytes(32), b"AES-128-GCM")
    with pytest.raises(OSError, match="NO-SUCH-GCM"):
        _sm4_openssl.EvpGcm(bytes(16), b"NO-SUCH-GCM")

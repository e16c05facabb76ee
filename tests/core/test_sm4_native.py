"""The native SM4-GCM backend (core/crypto/_sm4gcm.c): the same bytes as OpenSSL's SM4-GCM through `cryptography`,
nonces that never repeat (also across fork), any contiguous buffer, threads, and that it is built where it should be."""

from __future__ import annotations

import multiprocessing
import os
import platform
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from core.crypto.sm import SM4_BACKENDS, Sm4Gcm

_CPU_FLAGS = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
_X86_WITH_CLMUL = platform.machine() == "x86_64" and " pclmulqdq" in _CPU_FLAGS and " ssse3" in _CPU_FLAGS

pytestmark = pytest.mark.skipif("native" not in SM4_BACKENDS and not _X86_WITH_CLMUL, reason="not x86-64 with CLMUL")


def reference_seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    return nonce + encryptor.update(plaintext) + encryptor.finalize() + encryptor.tag


def test_it_is_built_and_preferred_on_x86_64_with_clmul() -> None:
    # An install that failed to compile would otherwise fall back to `cryptography` without a word.
    assert SM4_BACKENDS[0] == "native"


# Every partial-block length across the four-block key-stream batches and the 32-block chunks, and long messages
# (from 64 KiB the GIL is let go).
SIZES = [*range(0, 130), 511, 512, 513, 1000, 65_536, 70_001, (1 << 20) + 5]


@pytest.mark.parametrize("aad_size", [0, 1, 13, 16, 17, 40])
def test_seals_the_same_bytes_as_openssl_under_the_same_nonce(aad_size: int) -> None:
    key = os.urandom(16)
    sm4 = Sm4Gcm(key, "native")
    for size in SIZES:
        plaintext, aad = os.urandom(size), os.urandom(aad_size)
        blob = sm4.encrypt(plaintext, aad)
        assert blob == reference_seal(key, blob[:12], plaintext, aad), (size, aad_size)
        assert sm4.decrypt(blob, aad) == plaintext


def test_nonces_count_up_from_a_random_field_per_key_object() -> None:
    key = os.urandom(16)
    first, second = Sm4Gcm(key, "native"), Sm4Gcm(key, "native")
    nonces = [first.encrypt(b"x")[:12] for _ in range(1000)]
    assert {nonce[:8] for nonce in nonces} == {nonces[0][:8]}
    assert [int.from_bytes(nonce[8:], "big") for nonce in nonces] == list(range(1000))
    # Another object of the same key draws its own field, so the two never share a nonce.
    assert second.encrypt(b"x")[:8] != nonces[0][:8]


def _seal_in_child(sm4: Sm4Gcm, pipe: multiprocessing.connection.Connection) -> None:
    pipe.send(sm4.encrypt(b"from the child"))


def test_a_forked_child_draws_a_new_nonce_field() -> None:
    # Without it parent and child would seal their next messages under the same nonce.
    sm4 = Sm4Gcm(os.urandom(16), "native")
    before = sm4.encrypt(b"before the fork")
    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=_seal_in_child, args=(sm4, sender))
    child.start()
    from_child = receiver.recv()
    child.join(10)
    after = sm4.encrypt(b"after the fork")
    assert after[:8] == before[:8] and int.from_bytes(after[8:12], "big") == 1
    assert from_child[:8] != before[:8]
    assert sm4.decrypt(from_child) == b"from the child"


def test_any_contiguous_buffer_is_taken_and_other_arguments_refused() -> None:
    sm4 = Sm4Gcm(os.urandom(16), "native")
    blob = sm4.encrypt(bytearray(b"phone"), memoryview(b"patients.phone"))
    assert sm4.decrypt(memoryview(blob), bytearray(b"patients.phone")) == b"phone"
    with pytest.raises(TypeError):
        sm4.encrypt("text is not bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sm4.encrypt()
    with pytest.raises(TypeError):
        sm4.encrypt(b"a", b"b", b"c")
    with pytest.raises(BufferError):
        sm4.encrypt(memoryview(bytes(32))[::2])  # not contiguous
    with pytest.raises(ValueError, match="16 bytes"):
        Sm4Gcm(bytes(17), "native")


def test_threads_seal_and_open_long_messages_at_once() -> None:
    sm4 = Sm4Gcm(os.urandom(16), "native")
    messages = [os.urandom(200_000 + n) for n in range(16)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        blobs = list(pool.map(sm4.encrypt, messages))
        opened = list(pool.map(sm4.decrypt, blobs))
    assert opened == messages
    assert len({blob[:12] for blob in blobs}) == len(blobs)

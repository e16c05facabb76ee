"""core.crypto.sm2 on both backends: round trips, rejections, keys across backends, and interop with partners'
tools (`gmssl`, the `openssl` command line)."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from gmssl.sm2 import CryptSM2

from core.crypto import _sm2_asn1, _sm2_curve, _sm2_openssl, sm2

NAMES = ("openssl", "python")
BACKENDS = [
    pytest.param(name, marks=pytest.mark.skipif(name not in sm2.available_backends(), reason=f"no {name} backend"))
    for name in NAMES
]
PAIRS = [
    pytest.param(
        first,
        second,
        marks=pytest.mark.skipif(not {first, second} <= set(sm2.available_backends()), reason="needs both backends"),
        id=f"{first}-{second}",
    )
    for first in NAMES
    for second in NAMES
]
NEEDS_OPENSSL = pytest.mark.skipif("openssl" not in sm2.available_backends(), reason="no openssl backend")
MESSAGE = "处方 Rx-2024-0001：黄芪 30g，当归 6g".encode()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    with sm2.use_backend(request.param):
        yield request.param


@pytest.fixture
def key(backend: str) -> sm2.Sm2PrivateKey:
    return sm2.Sm2PrivateKey.generate()


def _flip(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


# Backend selection.


def test_backend_follows_use_backend(backend: str) -> None:
    assert sm2.backend_name() == backend


def test_openssl_is_preferred() -> None:
    assert sm2.backend_name() == ("openssl" if "openssl" in sm2.available_backends() else "python")


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="not available"), sm2.use_backend("tongsuo"):
        pass


# Signatures.


@pytest.mark.parametrize("signer_id", [sm2.DEFAULT_SIGNER_ID, b"ALICE123@YAHOO.COM", b"", "医生-0042".encode()])
def test_sign_and_verify(key: sm2.Sm2PrivateKey, signer_id: bytes) -> None:
    signature = key.sign(MESSAGE, signer_id)
    key.public_key().verify(signature, MESSAGE, signer_id)


def test_signatures_are_randomised(key: sm2.Sm2PrivateKey) -> None:
    assert key.sign(MESSAGE) != key.sign(MESSAGE)


def test_wrong_data_is_rejected(key: sm2.Sm2PrivateKey) -> None:
    with pytest.raises(sm2.InvalidSignature):
        key.public_key().verify(key.sign(MESSAGE), MESSAGE + b".")


def test_wrong_signer_id_is_rejected(key: sm2.Sm2PrivateKey) -> None:
    signature = key.sign(MESSAGE, b"doctor-1")
    with pytest.raises(sm2.InvalidSignature):
        key.public_key().verify(signature, MESSAGE, b"doctor-2")
    with pytest.raises(sm2.InvalidSignature):
        key.public_key().verify(signature, MESSAGE)


def test_wrong_key_is_rejected(key: sm2.Sm2PrivateKey) -> None:
    with pytest.raises(sm2.InvalidSignature):
        sm2.Sm2PrivateKey.generate().public_key().verify(key.sign(MESSAGE), MESSAGE)


@pytest.mark.parametrize("index", [-1, -33, 4])
def test_tampered_signature_is_rejected(key: sm2.Sm2PrivateKey, index: int) -> None:
    with pytest.raises(sm2.InvalidSignature):
        key.public_key().verify(_flip(key.sign(MESSAGE), index), MESSAGE)


@pytest.mark.parametrize("signature", [b"", b"\x30\x00", b"not a signature", b"\x30\x06\x02\x01\x00\x02\x01\x01"])
def test_malformed_signature_is_rejected(key: sm2.Sm2PrivateKey, signature: bytes) -> None:
    with pytest.raises(sm2.InvalidSignature):
        key.public_key().verify(signature, MESSAGE)


def _der_integer(body: bytes) -> bytes:
    return bytes([0x02, len(body)]) + body


def test_non_minimal_der_is_rejected(key: sm2.Sm2PrivateKey) -> None:
    raw = sm2.signature_to_raw(key.sign(MESSAGE))
    r, s = raw[:32], raw[32:].lstrip(b"\x00")
    # The same r and s, but r with a needless leading zero byte: a malleated encoding both backends must refuse.
    padded_r = bytes(2 if r[0] & 0x80 else 1) + r
    minimal_s = b"\x00" + s if s[0] & 0x80 else s
    integers = _der_integer(padded_r) + _der_integer(minimal_s)
    key.public_key().verify(sm2.signature_from_raw(raw), MESSAGE)
    with pytest.raises(sm2.InvalidSignature):
        key.public_key().verify(bytes([0x30, len(integers)]) + integers, MESSAGE)


def test_signer_id_too_long_is_refused(key: sm2.Sm2PrivateKey) -> None:
    with pytest.raises(ValueError, match="signer ID"):
        key.sign(MESSAGE, b"x" * 8191)
    long_id = b"x" * 8190
    key.public_key().verify(key.sign(MESSAGE, long_id), MESSAGE, long_id)


def test_raw_signature_round_trip(key: sm2.Sm2PrivateKey) -> None:
    signature = key.sign(MESSAGE)
    raw = sm2.signature_to_raw(signature)
    assert len(raw) == 64
    assert sm2.signature_from_raw(raw) == signature
    with pytest.raises(ValueError):
        sm2.signature_from_raw(raw[:-1])


@pytest.mark.parametrize(("signer", "verifier"), PAIRS)
def test_signatures_cross_backends(signer: str, verifier: str) -> None:
    with sm2.use_backend(signer):
        key = sm2.Sm2PrivateKey.generate()
        signature = key.sign(MESSAGE, b"ALICE123@YAHOO.COM")
    with sm2.use_backend(verifier):
        public = sm2.Sm2PublicKey.from_pem(key.public_key().to_pem())
        public.verify(signature, MESSAGE, b"ALICE123@YAHOO.COM")
        with pytest.raises(sm2.InvalidSignature):
            public.verify(signature, MESSAGE)


# Keys.


@pytest.mark.parametrize(("writer", "reader"), PAIRS)
def test_pem_and_raw_keys_cross_backends(writer: str, reader: str) -> None:
    with sm2.use_backend(writer):
        key = sm2.Sm2PrivateKey.generate()
        private_pem, public_pem = key.to_pem(), key.public_key().to_pem()
    assert private_pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    with sm2.use_backend(reader):
        loaded = sm2.Sm2PrivateKey.from_pem(private_pem)
        assert loaded.to_bytes() == key.to_bytes()
        assert loaded.to_pem() == private_pem
        assert sm2.Sm2PublicKey.from_pem(public_pem).to_pem() == public_pem
        assert sm2.Sm2PrivateKey.from_bytes(key.to_bytes()).to_pem() == private_pem
        assert sm2.Sm2PublicKey.from_bytes(key.public_key().to_bytes()).to_pem() == public_pem


def test_raw_key_sizes(key: sm2.Sm2PrivateKey) -> None:
    public = key.public_key().to_bytes()
    assert len(key.to_bytes()) == 32
    assert len(public) == 65 and public[0] == 4


def test_public_key_without_prefix_and_compressed(key: sm2.Sm2PrivateKey) -> None:
    public = key.public_key().to_bytes()
    compressed = bytes([2 + (public[-1] & 1)]) + public[1:33]
    assert sm2.Sm2PublicKey.from_bytes(public[1:]).to_bytes() == public
    assert sm2.Sm2PublicKey.from_bytes(compressed).to_bytes() == public


def _aliased_point() -> bytes:
    """A curve point whose x is small enough to be written as x + p: right modulo p, but not a field element."""
    for x in itertools.count():
        try:
            point = _sm2_curve.decode_point(b"\x02" + _sm2_curve.int32(x))
        except ValueError:
            continue
        return b"\x04" + _sm2_curve.int32(x + _sm2_curve.P) + _sm2_curve.int32(point[1])
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "point",
    [
        b"\x04" + bytes(64),  # (0, 0) is not on the curve
        b"\x04" + _sm2_curve.int32(_sm2_curve.GX) + _sm2_curve.int32(_sm2_curve.GY + 1),
        _aliased_point(),
        b"\x05" + _sm2_curve.int32(_sm2_curve.GX) + _sm2_curve.int32(_sm2_curve.GY),
        b"\x04" + _sm2_curve.int32(_sm2_curve.GX),
        b"",
    ],
    ids=["origin", "off-curve", "x-too-big", "bad-prefix", "short", "empty"],
)
def test_invalid_public_point_is_rejected(backend: str, point: bytes) -> None:
    with pytest.raises(ValueError):
        sm2.Sm2PublicKey.from_bytes(point)


@pytest.mark.parametrize("scalar", [0, _sm2_curve.N - 1, _sm2_curve.N, 2**256 - 1], ids=["zero", "n-1", "n", "max"])
def test_invalid_private_scalar_is_rejected(backend: str, scalar: int) -> None:
    with pytest.raises(ValueError):
        sm2.Sm2PrivateKey.from_bytes(_sm2_curve.int32(scalar))


@pytest.mark.parametrize("size", [31, 33])
def test_private_key_of_wrong_length_is_rejected(backend: str, size: int) -> None:
    with pytest.raises(ValueError):
        sm2.Sm2PrivateKey.from_bytes(bytes(size - 1) + b"\x01")


def test_garbage_pem_is_rejected(backend: str) -> None:
    with pytest.raises(ValueError):
        sm2.Sm2PrivateKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError):
        sm2.Sm2PublicKey.from_pem(b"no key here")


def test_other_curves_are_rejected(backend: str, tmp_path: Path) -> None:
    openssl = _openssl_cli()
    subprocess.run(
        [openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ec.pem"], cwd=tmp_path, check=True
    )
    subprocess.run(
        [openssl, "pkcs8", "-topk8", "-nocrypt", "-in", "ec.pem", "-out", "p8.pem"], cwd=tmp_path, check=True
    )
    subprocess.run([openssl, "pkey", "-in", "p8.pem", "-pubout", "-out", "pub.pem"], cwd=tmp_path, check=True)
    with pytest.raises(ValueError):
        sm2.Sm2PrivateKey.from_pem((tmp_path / "p8.pem").read_bytes())
    with pytest.raises(ValueError):
        sm2.Sm2PublicKey.from_pem((tmp_path / "pub.pem").read_bytes())


@NEEDS_OPENSSL
def test_encrypted_pem_with_openssl() -> None:
    with sm2.use_backend("openssl"):
        key = sm2.Sm2PrivateKey.generate()
        pem = key.to_pem(password=b"s3cret\x00binary")
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
        assert sm2.Sm2PrivateKey.from_pem(pem, password=b"s3cret\x00binary").to_bytes() == key.to_bytes()
        with pytest.raises(ValueError):
            sm2.Sm2PrivateKey.from_pem(pem, password=b"s3cret")
        with pytest.raises(ValueError):
            sm2.Sm2PrivateKey.from_pem(pem)
    with sm2.use_backend("python"), pytest.raises(NotImplementedError, match="OpenSSL backend"):
        sm2.Sm2PrivateKey.from_pem(pem, password=b"s3cret\x00binary")


def test_password_is_ignored_for_an_unencrypted_key(key: sm2.Sm2PrivateKey) -> None:
    assert sm2.Sm2PrivateKey.from_pem(key.to_pem(), password=b"unused").to_bytes() == key.to_bytes()


def test_python_backend_rejects_a_stored_public_point_of_another_key() -> None:
    other = _sm2_curve.encode_point(_sm2_curve.public_point(2))
    pem = _sm2_asn1.pem_encode("PRIVATE KEY", _sm2_asn1.encode_private_key(_sm2_curve.int32(1), other))
    with sm2.use_backend("python"), pytest.raises(ValueError, match="does not match"):
        sm2.Sm2PrivateKey.from_pem(pem)


def test_without_libcrypto_the_backend_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sm2_openssl, "_library_candidates", list)
    with pytest.raises(OSError, match="libcrypto 3 not found"):
        _sm2_openssl.OpenSslBackend.load()


def test_python_backend_refuses_to_encrypt_pem() -> None:
    with sm2.use_backend("python"), pytest.raises(NotImplementedError, match="OpenSSL backend"):
        sm2.Sm2PrivateKey.generate().to_pem(password=b"pw")


# Encryption.


@pytest.mark.parametrize("size", [1, 31, 32, 33, 1000])
def test_encrypt_and_decrypt(key: sm2.Sm2PrivateKey, size: int) -> None:
    plaintext = bytes(range(256)) * 4
    ciphertext = key.public_key().encrypt(plaintext[:size])
    assert len(ciphertext) == 97 + size and ciphertext[0] == 4
    assert key.decrypt(ciphertext) == plaintext[:size]


@pytest.mark.parametrize(("encryptor", "decryptor"), PAIRS)
def test_encryption_cross_backends(encryptor: str, decryptor: str) -> None:
    with sm2.use_backend(decryptor):
        key = sm2.Sm2PrivateKey.generate()
    with sm2.use_backend(encryptor):
        ciphertext = sm2.Sm2PublicKey.from_bytes(key.public_key().to_bytes()).encrypt(MESSAGE)
    assert key.decrypt(ciphertext) == MESSAGE


@pytest.mark.parametrize("index", [65, 96, 97, -1], ids=["C3-first", "C3-last", "C2-first", "C2-last"])
def test_tampered_ciphertext_is_rejected(key: sm2.Sm2PrivateKey, index: int) -> None:
    ciphertext = key.public_key().encrypt(MESSAGE)
    with pytest.raises(sm2.DecryptionError):
        key.decrypt(_flip(ciphertext, index))


def test_tampered_c1_is_rejected(key: sm2.Sm2PrivateKey) -> None:
    ciphertext = key.public_key().encrypt(MESSAGE)
    with pytest.raises(sm2.DecryptionError):
        key.decrypt(_flip(ciphertext, 64))
    with pytest.raises(sm2.DecryptionError):
        key.decrypt(b"\x04" + bytes(64) + ciphertext[65:])


def test_ciphertext_for_another_key_is_rejected(key: sm2.Sm2PrivateKey) -> None:
    with pytest.raises(sm2.DecryptionError):
        key.decrypt(sm2.Sm2PrivateKey.generate().public_key().encrypt(MESSAGE))


@pytest.mark.parametrize("ciphertext", [b"", b"\x04" + bytes(96)], ids=["empty", "no-C2"])
def test_short_ciphertext_is_rejected(key: sm2.Sm2PrivateKey, ciphertext: bytes) -> None:
    with pytest.raises(sm2.DecryptionError):
        key.decrypt(ciphertext)


def test_empty_plaintext_is_refused(key: sm2.Sm2PrivateKey) -> None:
    with pytest.raises(ValueError):
        key.public_key().encrypt(b"")


def test_ciphertext_der_round_trip(key: sm2.Sm2PrivateKey) -> None:
    ciphertext = key.public_key().encrypt(MESSAGE)
    assert sm2.ciphertext_from_der(sm2.ciphertext_to_der(ciphertext)) == ciphertext
    with pytest.raises(ValueError):
        sm2.ciphertext_to_der(ciphertext[:97])


# Interop with gmssl 3.2.2, which partners use: raw r‖s hex, ID fixed to 1234567812345678, C1 without the 04.


def _gmssl_peer(key: sm2.Sm2PrivateKey) -> CryptSM2:
    return CryptSM2(private_key=key.to_bytes().hex(), public_key=key.public_key().to_bytes()[1:].hex(), mode=1)


@pytest.fixture
def gmssl_key(backend: str) -> sm2.Sm2PrivateKey:
    # gmssl strips every leading "0"/"4" character from a public key hex that starts with "04" (py-gmssl#66),
    # so give it keys whose x‖y hex does not start that way.
    while True:
        key = sm2.Sm2PrivateKey.generate()
        if not key.public_key().to_bytes()[1:].hex().startswith("04"):
            return key


def test_gmssl_verifies_our_signature(gmssl_key: sm2.Sm2PrivateKey) -> None:
    raw = sm2.signature_to_raw(gmssl_key.sign(MESSAGE))
    assert _gmssl_peer(gmssl_key).verify_with_sm3(raw.hex(), MESSAGE)


def test_we_verify_gmssl_signature(gmssl_key: sm2.Sm2PrivateKey) -> None:
    raw_hex = _gmssl_peer(gmssl_key).sign_with_sm3(MESSAGE)
    signature = sm2.signature_from_raw(bytes.fromhex(raw_hex))
    gmssl_key.public_key().verify(signature, MESSAGE)
    with pytest.raises(sm2.InvalidSignature):
        gmssl_key.public_key().verify(signature, MESSAGE, b"ALICE123@YAHOO.COM")


def test_we_decrypt_gmssl_ciphertext(gmssl_key: sm2.Sm2PrivateKey) -> None:
    ciphertext = _gmssl_peer(gmssl_key).encrypt(MESSAGE)
    assert gmssl_key.decrypt(b"\x04" + ciphertext) == MESSAGE


def test_gmssl_decrypts_our_ciphertext(gmssl_key: sm2.Sm2PrivateKey) -> None:
    ciphertext = gmssl_key.public_key().encrypt(MESSAGE)
    assert _gmssl_peer(gmssl_key).decrypt(ciphertext[1:]) == MESSAGE


# Interop with the openssl command line, as partners on plain OpenSSL 3 sign and encrypt.


def _openssl_cli() -> str:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command line here")
    probe = subprocess.run([openssl, "genpkey", "-algorithm", "SM2"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("this openssl command line has no SM2")
    return openssl


@pytest.fixture
def cli(backend: str, tmp_path: Path) -> tuple[str, Path, sm2.Sm2PrivateKey]:
    openssl = _openssl_cli()
    key = sm2.Sm2PrivateKey.generate()
    (tmp_path / "key.pem").write_bytes(key.to_pem())
    (tmp_path / "pub.pem").write_bytes(key.public_key().to_pem())
    (tmp_path / "msg").write_bytes(MESSAGE)
    return openssl, tmp_path, key


def _run(openssl: str, directory: Path, *args: str) -> bytes:
    return subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True).stdout


@pytest.mark.parametrize("signer_id", [sm2.DEFAULT_SIGNER_ID, b"ALICE123@YAHOO.COM"])
def test_openssl_cli_verifies_our_signature(cli: tuple[str, Path, sm2.Sm2PrivateKey], signer_id: bytes) -> None:
    openssl, directory, key = cli
    (directory / "sig").write_bytes(key.sign(MESSAGE, signer_id))
    output = _run(
        openssl, directory, "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey", "pub.pem",
        "-in", "msg", "-sigfile", "sig", "-pkeyopt", f"hexdistid:{signer_id.hex()}",
    )  # fmt: skip
    assert b"Signature Verified Successfully" in output


@pytest.mark.parametrize("signer_id", [sm2.DEFAULT_SIGNER_ID, b"ALICE123@YAHOO.COM"])
def test_we_verify_openssl_cli_signature(cli: tuple[str, Path, sm2.Sm2PrivateKey], signer_id: bytes) -> None:
    openssl, directory, key = cli
    _run(
        openssl, directory, "dgst", "-sm3", "-sign", "key.pem", "-sigopt", f"hexdistid:{signer_id.hex()}",
        "-out", "sig", "msg",
    )  # fmt: skip
    key.public_key().verify((directory / "sig").read_bytes(), MESSAGE, signer_id)


def test_we_decrypt_openssl_cli_ciphertext(cli: tuple[str, Path, sm2.Sm2PrivateKey]) -> None:
    openssl, directory, key = cli
    der = _run(openssl, directory, "pkeyutl", "-encrypt", "-pubin", "-inkey", "pub.pem", "-in", "msg")
    assert key.decrypt(sm2.ciphertext_from_der(der)) == MESSAGE


def test_openssl_cli_decrypts_our_ciphertext(cli: tuple[str, Path, sm2.Sm2PrivateKey]) -> None:
    openssl, directory, key = cli
    (directory / "ct").write_bytes(sm2.ciphertext_to_der(key.public_key().encrypt(MESSAGE)))
    assert _run(openssl, directory, "pkeyutl", "-decrypt", "-inkey", "key.pem", "-in", "ct") == MESSAGE


def test_we_read_openssl_cli_keys(backend: str, tmp_path: Path) -> None:
    openssl = _openssl_cli()
    _run(openssl, tmp_path, "genpkey", "-algorithm", "SM2", "-out", "key.pem")
    _run(openssl, tmp_path, "pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem")
    key = sm2.Sm2PrivateKey.from_pem((tmp_path / "key.pem").read_bytes())
    public = sm2.Sm2PublicKey.from_pem((tmp_path / "pub.pem").read_bytes())
    assert key.public_key().to_bytes() == public.to_bytes()
    assert key.to_pem() == (tmp_path / "key.pem").read_bytes()

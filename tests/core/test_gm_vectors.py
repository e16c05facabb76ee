"""Published 国密 test vectors: SM3 (GB/T 32905), SM4 (GB/T 32907) and SM2 on sm2p256v1 (GB/T 32918.5 / GM/T 0003.5).

The SM2 examples fix the nonce k, which only the Python backend can take (through `_sm2_curve`); the published
signature and ciphertext are then checked against both backends through the public API.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from core.crypto import _sm2_curve, sm2
from core.crypto.sm import sm3

BACKENDS = [
    pytest.param(name, marks=pytest.mark.skipif(name not in sm2.available_backends(), reason=f"no {name} backend"))
    for name in ("openssl", "python")
]

# GB/T 32918.5-2017 Annex A (also GM/T 0003.5-2012): the same key and nonce serve the signature and the
# encryption examples.
PRIVATE_KEY = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
PUBLIC_KEY = bytes.fromhex(
    "04"
    "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
    "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
)
NONCE = 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21
SIGNED_MESSAGE = b"message digest"
ZA = bytes.fromhex("B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3")
DIGEST = 0xF0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640
R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA
ENCRYPTED_MESSAGE = b"encryption standard"
CIPHERTEXT = bytes.fromhex(
    "04"
    "04EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73"
    "E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0"
    "59983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766"
    "21886CA989CA9C7D58087307CA93092D651EFA"
)
# The same ciphertext in the GM/T 0009 DER that OpenSSL produces: SEQUENCE {x, y, C3, C2}.
CIPHERTEXT_DER = bytes.fromhex(
    "307C"
    "022004EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73"
    "022100E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0"
    "042059983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766"
    "041321886CA989CA9C7D58087307CA93092D651EFA"
)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    with sm2.use_backend(request.param):
        yield request.param


def test_sm3_abc() -> None:
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_sm3_two_blocks() -> None:
    assert sm3(b"abcd" * 16).hex() == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"


SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")


def test_sm4_single_block() -> None:
    encryptor = Cipher(algorithms.SM4(SM4_KEY), modes.ECB()).encryptor()
    assert encryptor.update(SM4_KEY).hex() == "681edf34d206965e86b3e94f536e4246"


def test_sm4_one_million_encryptions() -> None:
    encryptor = Cipher(algorithms.SM4(SM4_KEY), modes.ECB()).encryptor()
    block = SM4_KEY
    for _ in range(1_000_000):
        block = encryptor.update(block)
    assert block.hex() == "595298c7c6fd271f0402f804c33d3f66"


def test_public_key_of_the_example_private_key(backend: str) -> None:
    key = sm2.Sm2PrivateKey.from_bytes(PRIVATE_KEY)
    assert key.public_key().to_bytes() == PUBLIC_KEY
    assert key.to_bytes() == PRIVATE_KEY


def test_signature_example_with_the_published_nonce() -> None:
    d = int.from_bytes(PRIVATE_KEY, "big")
    public = _sm2_curve.decode_point(PUBLIC_KEY)
    assert _sm2_curve.za(sm2.DEFAULT_SIGNER_ID, public) == ZA
    assert _sm2_curve.message_digest(sm2.DEFAULT_SIGNER_ID, public, SIGNED_MESSAGE) == DIGEST
    assert _sm2_curve.sign_with_nonce(d, DIGEST, NONCE) == (R, S)


def test_published_signature_verifies(backend: str) -> None:
    public = sm2.Sm2PublicKey.from_bytes(PUBLIC_KEY)
    signature = sm2.signature_from_raw(_sm2_curve.int32(R) + _sm2_curve.int32(S))
    public.verify(signature, SIGNED_MESSAGE, b"1234567812345678")
    with pytest.raises(sm2.InvalidSignature):
        public.verify(signature, SIGNED_MESSAGE, b"ALICE123@YAHOO.COM")


def test_encryption_example_with_the_published_nonce() -> None:
    public = _sm2_curve.decode_point(PUBLIC_KEY)
    assert _sm2_curve.encrypt_with_nonce(public, ENCRYPTED_MESSAGE, NONCE) == CIPHERTEXT


def test_published_ciphertext_decrypts(backend: str) -> None:
    assert sm2.Sm2PrivateKey.from_bytes(PRIVATE_KEY).decrypt(CIPHERTEXT) == ENCRYPTED_MESSAGE


def test_published_ciphertext_in_der() -> None:
    assert sm2.ciphertext_to_der(CIPHERTEXT) == CIPHERTEXT_DER
    assert sm2.ciphertext_from_der(CIPHERTEXT_DER) == CIPHERTEXT

"""The pure-Python SM2 backend: `_sm2_curve` for the algorithms, `_sm2_asn1` for DER and PEM."""

from __future__ import annotations

from core.crypto import _sm2_asn1 as asn1
from core.crypto import _sm2_curve as curve

_NO_PASSWORDS = "password-protected PEM keys need the OpenSSL backend (the Python backend has no PBES2)"


class PythonPublicKey:
    def __init__(self, point: curve.Affine) -> None:
        self._point = point

    def to_pem(self) -> bytes:
        return asn1.pem_encode("PUBLIC KEY", asn1.encode_public_key(self.to_bytes()))

    def to_bytes(self) -> bytes:
        return curve.encode_point(self._point)

    def verify(self, signature: bytes, data: bytes, signer_id: bytes) -> bool:
        try:
            r, s = asn1.decode_signature(signature)
        except ValueError:
            return False
        return curve.verify(self._point, curve.message_digest(signer_id, self._point, data), r, s)

    def encrypt(self, plaintext: bytes) -> bytes:
        return curve.encrypt(self._point, plaintext)


class PythonPrivateKey:
    def __init__(self, d: int) -> None:
        self._d = d
        # Every signature needs Z_A, which hashes the public point; compute it once.
        self._public = curve.public_point(d)

    def to_pem(self, password: bytes | None) -> bytes:
        if password is not None:
            raise NotImplementedError(_NO_PASSWORDS)
        der = asn1.encode_private_key(self.to_bytes(), curve.encode_point(self._public))
        return asn1.pem_encode("PRIVATE KEY", der)

    def to_bytes(self) -> bytes:
        return curve.int32(self._d)

    def public_key(self) -> PythonPublicKey:
        return PythonPublicKey(self._public)

    def sign(self, data: bytes, signer_id: bytes) -> bytes:
        r, s = curve.sign(self._d, curve.message_digest(signer_id, self._public, data))
        return asn1.encode_signature(r, s)

    def decrypt(self, ciphertext: bytes) -> bytes | None:
        return curve.decrypt(self._d, ciphertext)


class PythonBackend:
    name = "python"

    def generate(self) -> PythonPrivateKey:
        return PythonPrivateKey(curve.random_private_scalar())

    def private_from_pem(self, data: bytes, password: bytes | None) -> PythonPrivateKey:
        # Like OpenSSL, a password given for an unencrypted key is ignored.
        if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data:
            raise NotImplementedError(_NO_PASSWORDS)
        d, public = asn1.decode_private_key(asn1.pem_decode("PRIVATE KEY", data))
        key = self.private_from_bytes(d)
        # A stored point that is not d·G would give signatures nobody else can verify, since Z_A hashes it.
        if public is not None and curve.encode_point(curve.decode_point(public)) != key.public_key().to_bytes():
            raise ValueError("the public key stored with the private key does not match it")
        return key

    def private_from_bytes(self, d: bytes) -> PythonPrivateKey:
        return PythonPrivateKey(curve.private_scalar(d))

    def public_from_pem(self, data: bytes) -> PythonPublicKey:
        return self.public_from_bytes(asn1.decode_public_key(asn1.pem_decode("PUBLIC KEY", data)))

    def public_from_bytes(self, data: bytes) -> PythonPublicKey:
        return PythonPublicKey(curve.decode_point(data))

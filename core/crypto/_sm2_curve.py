"""Curve sm2p256v1 and the GB/T 32918 algorithms (signature, encryption, KDF) in pure Python.

This is the fallback for hosts whose libcrypto lacks SM2; the OpenSSL backend borrows only its cheap, public-data
helpers (point checks, the public point of a scalar it imports). Python integers are not constant-time, so the
signing and decryption here leak timing; that is accepted for a fallback and is why OpenSSL is preferred.
"""

from __future__ import annotations

import secrets
from functools import cache
from hmac import compare_digest

from core.crypto.sm import sm3

P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = P - 3
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

SIZE = 32
POINT_SIZE = 1 + 2 * SIZE
CIPHERTEXT_OVERHEAD = POINT_SIZE + SIZE  # C1 (uncompressed point) and C3 (SM3 digest)

Affine = tuple[int, int]
_Jacobian = tuple[int, int, int]
_INFINITY: _Jacobian = (1, 1, 0)
_WINDOW = 4
_WINDOWS = 256 // _WINDOW


def int32(value: int) -> bytes:
    return value.to_bytes(SIZE, "big")


def is_on_curve(x: int, y: int) -> bool:
    return 0 <= x < P and 0 <= y < P and (y * y - x * x * x - A * x - B) % P == 0


def decode_point(data: bytes) -> Affine:
    """An uncompressed (04‖x‖y) or compressed (02/03‖x) point, checked to lie on the curve."""
    if len(data) == POINT_SIZE and data[0] == 4:
        x, y = int.from_bytes(data[1 : 1 + SIZE], "big"), int.from_bytes(data[1 + SIZE :], "big")
    elif len(data) == 1 + SIZE and data[0] in (2, 3):
        x = int.from_bytes(data[1:], "big")
        y = _lift_x(x, odd=data[0] == 3)
    else:
        raise ValueError("an SM2 public point is 04‖x‖y (65 bytes) or 02/03‖x (33 bytes)")
    if not is_on_curve(x, y):
        raise ValueError("the point is not on the SM2 curve")
    return x, y


def _lift_x(x: int, odd: bool) -> int:
    square = (x * x * x + A * x + B) % P
    # p ≡ 3 (mod 4), so a square root is a single exponentiation.
    y = pow(square, (P + 1) // 4, P)
    if y * y % P != square:
        raise ValueError("the point is not on the SM2 curve")
    return P - y if (y & 1) != odd else y


def encode_point(point: Affine) -> bytes:
    return b"\x04" + int32(point[0]) + int32(point[1])


def private_scalar(data: bytes) -> int:
    """The private key d from its 32 big-endian bytes; SM2 needs 1 ≤ d ≤ n−2 so that 1 + d is invertible."""
    if len(data) != SIZE:
        raise ValueError("an SM2 private key is 32 bytes")
    d = int.from_bytes(data, "big")
    if not 1 <= d <= N - 2:
        raise ValueError("the SM2 private key is out of range")
    return d


def random_private_scalar() -> int:
    return secrets.randbelow(N - 2) + 1


def _random_nonce() -> int:
    return secrets.randbelow(N - 1) + 1


def _double(point: _Jacobian) -> _Jacobian:
    x, y, z = point
    if z == 0:
        return _INFINITY
    # dbl-2001-b, which uses a = −3.
    delta = z * z % P
    gamma = y * y % P
    beta = x * gamma % P
    alpha = 3 * (x - delta) * (x + delta) % P
    x3 = (alpha * alpha - 8 * beta) % P
    z3 = ((y + z) * (y + z) - gamma - delta) % P
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % P
    return x3, y3, z3


def _add_affine(point: _Jacobian, other: Affine) -> _Jacobian:
    x1, y1, z1 = point
    x2, y2 = other
    if z1 == 0:
        return x2, y2, 1
    z1z1 = z1 * z1 % P
    h = (x2 * z1z1 - x1) % P
    r = (y2 * z1 * z1z1 - y1) % P
    if h == 0:
        return _double(point) if r == 0 else _INFINITY
    hh = h * h % P
    hhh = h * hh % P
    v = x1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    y3 = (r * (v - x3) - y1 * hhh) % P
    return x3, y3, z1 * h % P


def _to_affine(point: _Jacobian) -> Affine | None:
    x, y, z = point
    if z == 0:
        return None
    z_inv = pow(z, -1, P)
    z_inv2 = z_inv * z_inv % P
    return x * z_inv2 % P, y * z_inv2 * z_inv % P


def _multiples(point: Affine, count: int) -> list[Affine]:
    """[1·point, 2·point, …, count·point], none of which is infinity for the small counts used here."""
    table = [point]
    acc: _Jacobian = (point[0], point[1], 1)
    for _ in range(count - 1):
        acc = _add_affine(acc, point)
        affine = _to_affine(acc)
        assert affine is not None
        table.append(affine)
    return table


@cache
def _base_table() -> tuple[list[Affine], ...]:
    """Row i holds j·16^i·G for j = 1…15, so k·G takes at most 64 additions and no doublings."""
    rows = []
    base: Affine = (GX, GY)
    for _ in range(_WINDOWS):
        row = _multiples(base, 1 << _WINDOW)
        rows.append(row[:-1])
        base = row[-1]
    return tuple(rows)


def _base_multiply(k: int) -> _Jacobian:
    acc = _INFINITY
    for row in _base_table():
        digit = k & 0xF
        if digit:
            acc = _add_affine(acc, row[digit - 1])
        k >>= _WINDOW
    return acc


def _multiply(k: int, point: Affine) -> _Jacobian:
    table = _multiples(point, (1 << _WINDOW) - 1)
    acc = _INFINITY
    for shift in range(256 - _WINDOW, -1, -_WINDOW):
        for _ in range(_WINDOW):
            acc = _double(acc)
        digit = (k >> shift) & 0xF
        if digit:
            acc = _add_affine(acc, table[digit - 1])
    return acc


def public_point(d: int) -> Affine:
    point = _to_affine(_base_multiply(d))
    assert point is not None, "scalars here are in [1, n−1], and G has order n"
    return point


def za(signer_id: bytes, public: Affine) -> bytes:
    """Z_A = SM3(ENTL_A ‖ ID_A ‖ a ‖ b ‖ x_G ‖ y_G ‖ x_A ‖ y_A); ENTL_A is the ID's length in bits."""
    parts = (A, B, GX, GY, public[0], public[1])
    return sm3((8 * len(signer_id)).to_bytes(2, "big") + signer_id + b"".join(int32(part) for part in parts))


def message_digest(signer_id: bytes, public: Affine, data: bytes) -> int:
    return int.from_bytes(sm3(za(signer_id, public) + data), "big")


def sign_with_nonce(d: int, e: int, k: int) -> tuple[int, int] | None:
    """One signing attempt with nonce k; None when the standard says to draw another k."""
    x1, _ = public_point(k)
    r = (e + x1) % N
    if r == 0 or r + k == N:
        return None
    s = pow(1 + d, -1, N) * (k - r * d) % N
    return (r, s) if s else None


def sign(d: int, e: int) -> tuple[int, int]:
    while True:
        signature = sign_with_nonce(d, e, _random_nonce())
        if signature is not None:
            return signature


def verify(public: Affine, e: int, r: int, s: int) -> bool:
    if not (1 <= r < N and 1 <= s < N):
        return False
    t = (r + s) % N
    if t == 0:
        return False
    tp = _to_affine(_multiply(t, public))
    if tp is None:
        return False
    point = _to_affine(_add_affine(_base_multiply(s), tp))
    return point is not None and (e + point[0]) % N == r


def kdf(z: bytes, length: int) -> bytes:
    """The GB/T 32918.4 key derivation: SM3(Z ‖ ct) for a 32-bit counter ct = 1, 2, …, truncated to length."""
    blocks = (length + SIZE - 1) // SIZE
    return b"".join(sm3(z + counter.to_bytes(4, "big")) for counter in range(1, blocks + 1))[:length]


def _xor(left: bytes, right: bytes) -> bytes:
    return (int.from_bytes(left, "big") ^ int.from_bytes(right, "big")).to_bytes(len(left), "big")


def encrypt_with_nonce(public: Affine, plaintext: bytes, k: int) -> bytes | None:
    """C1 ‖ C3 ‖ C2 for nonce k; None when the KDF output is all zero and another k is needed."""
    shared = _to_affine(_multiply(k, public))
    assert shared is not None, "public points have prime order n and 1 ≤ k < n"
    x2, y2 = int32(shared[0]), int32(shared[1])
    mask = kdf(x2 + y2, len(plaintext))
    if not any(mask):
        return None
    c1 = encode_point(public_point(k))
    return c1 + sm3(x2 + plaintext + y2) + _xor(plaintext, mask)


def encrypt(public: Affine, plaintext: bytes) -> bytes:
    while True:
        ciphertext = encrypt_with_nonce(public, plaintext, _random_nonce())
        if ciphertext is not None:
            return ciphertext


def decrypt(d: int, ciphertext: bytes) -> bytes | None:
    """The plaintext, or None when C1 is not a curve point or C3 does not match (tampered or wrong key)."""
    try:
        c1 = decode_point(ciphertext[:POINT_SIZE])
    except ValueError:
        return None
    c3, c2 = ciphertext[POINT_SIZE:CIPHERTEXT_OVERHEAD], ciphertext[CIPHERTEXT_OVERHEAD:]
    shared = _to_affine(_multiply(d, c1))
    if shared is None:
        return None
    x2, y2 = int32(shared[0]), int32(shared[1])
    mask = kdf(x2 + y2, len(c2))
    if not any(mask):
        return None
    plaintext = _xor(c2, mask)
    return plaintext if compare_digest(sm3(x2 + plaintext + y2), c3) else None

"""The few DER structures SM2 needs, encoded and strictly decoded by hand.

Signatures are SEQUENCE {r, s}; ciphertexts follow GM/T 0009 (SEQUENCE {x, y, C3, C2}); keys are PKCS#8
PrivateKeyInfo and SubjectPublicKeyInfo with id-ecPublicKey and the sm2p256v1 OID, byte for byte what OpenSSL
writes, so keys move freely between the two backends. Decoding rejects non-minimal encodings, as OpenSSL does for
signatures, so a signature that one backend refuses the other refuses too.
"""

from __future__ import annotations

import base64
import binascii

from core.crypto._sm2_curve import CIPHERTEXT_OVERHEAD, POINT_SIZE, SIZE, int32

_INTEGER = 0x02
_BIT_STRING = 0x03
_OCTET_STRING = 0x04
_OID = 0x06
_SEQUENCE = 0x30
_EXPLICIT_0 = 0xA0
_EXPLICIT_1 = 0xA1


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    body = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _length(len(body)) + body


def _integer(value: int) -> bytes:
    # One spare bit keeps the sign bit clear, so values with the top bit set get their leading zero byte.
    return _tlv(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(arc) for arc in dotted.split("."))
    body = bytearray([40 * first + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        while arc := arc >> 7:
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return _tlv(_OID, bytes(body))


_ALGORITHM = _tlv(_SEQUENCE, _oid("1.2.840.10045.2.1") + _oid("1.2.156.10197.1.301"))
_SM2_CURVE = _oid("1.2.156.10197.1.301")


class _Reader:
    """Reads consecutive TLVs from one DER body; every method raises ValueError on malformed input."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def at_end(self) -> bool:
        return self._pos == len(self._data)

    def peek(self) -> int | None:
        return None if self.at_end() else self._data[self._pos]

    def take(self, tag: int) -> bytes:
        if self.peek() != tag:
            raise ValueError("malformed DER: unexpected tag")
        size, start = self._read_length(self._pos + 1)
        end = start + size
        if end > len(self._data):
            raise ValueError("malformed DER: truncated")
        self._pos = end
        return self._data[start:end]

    def take_integer(self) -> int:
        body = self.take(_INTEGER)
        if not body or body[0] & 0x80 or (len(body) > 1 and body[0] == 0 and not body[1] & 0x80):
            raise ValueError("malformed DER: negative or non-minimal INTEGER")
        return int.from_bytes(body, "big")

    def finish(self) -> None:
        if not self.at_end():
            raise ValueError("malformed DER: trailing bytes")

    def _read_length(self, pos: int) -> tuple[int, int]:
        if pos >= len(self._data):
            raise ValueError("malformed DER: truncated")
        first = self._data[pos]
        if first < 0x80:
            return first, pos + 1
        count = first & 0x7F
        body = self._data[pos + 1 : pos + 1 + count]
        if count == 0 or len(body) != count or body[0] == 0:
            raise ValueError("malformed DER: bad length")
        size = int.from_bytes(body, "big")
        if size < 0x80:
            raise ValueError("malformed DER: non-minimal length")
        return size, pos + 1 + count


def _single(tag: int, der: bytes) -> _Reader:
    """A reader over the body of the one TLV that makes up der."""
    outer = _Reader(der)
    body = outer.take(tag)
    outer.finish()
    return _Reader(body)


def encode_signature(r: int, s: int) -> bytes:
    return _tlv(_SEQUENCE, _integer(r) + _integer(s))


def decode_signature(der: bytes) -> tuple[int, int]:
    reader = _single(_SEQUENCE, der)
    r, s = reader.take_integer(), reader.take_integer()
    reader.finish()
    return r, s


def signature_to_raw(der: bytes) -> bytes:
    r, s = decode_signature(der)
    if max(r, s) >> (8 * SIZE):
        raise ValueError("an SM2 signature value is longer than 32 bytes")
    return int32(r) + int32(s)


def signature_from_raw(raw: bytes) -> bytes:
    if len(raw) != 2 * SIZE:
        raise ValueError("a raw SM2 signature r‖s is 64 bytes")
    return encode_signature(int.from_bytes(raw[:SIZE], "big"), int.from_bytes(raw[SIZE:], "big"))


def ciphertext_to_der(ciphertext: bytes) -> bytes:
    if len(ciphertext) <= CIPHERTEXT_OVERHEAD or ciphertext[0] != 4:
        raise ValueError("not an SM2 C1‖C3‖C2 ciphertext with an uncompressed C1")
    x, y = int.from_bytes(ciphertext[1 : 1 + SIZE], "big"), int.from_bytes(ciphertext[1 + SIZE : POINT_SIZE], "big")
    c3, c2 = ciphertext[POINT_SIZE:CIPHERTEXT_OVERHEAD], ciphertext[CIPHERTEXT_OVERHEAD:]
    return _tlv(_SEQUENCE, _integer(x) + _integer(y) + _tlv(_OCTET_STRING, c3) + _tlv(_OCTET_STRING, c2))


def ciphertext_from_der(der: bytes) -> bytes:
    reader = _single(_SEQUENCE, der)
    x, y = reader.take_integer(), reader.take_integer()
    c3, c2 = reader.take(_OCTET_STRING), reader.take(_OCTET_STRING)
    reader.finish()
    if max(x, y) >> (8 * SIZE) or len(c3) != SIZE or not c2:
        raise ValueError("not an SM2 ciphertext (GM/T 0009 SEQUENCE {x, y, C3, C2})")
    return b"\x04" + int32(x) + int32(y) + c3 + c2


def encode_private_key(d: bytes, public: bytes) -> bytes:
    """PKCS#8 PrivateKeyInfo around an RFC 5915 ECPrivateKey that carries the public point, as OpenSSL writes it."""
    ec_key = _tlv(_SEQUENCE, _integer(1) + _tlv(_OCTET_STRING, d) + _tlv(_EXPLICIT_1, _bit_string(public)))
    return _tlv(_SEQUENCE, _integer(0) + _ALGORITHM + _tlv(_OCTET_STRING, ec_key))


def decode_private_key(der: bytes) -> tuple[bytes, bytes | None]:
    """The private scalar (left-padded to 32 bytes) and the public point, if the key carries one."""
    info = _single(_SEQUENCE, der)
    if info.take_integer() not in (0, 1):
        raise ValueError("unsupported PKCS#8 version")
    _check_algorithm(info.take(_SEQUENCE))
    # Attributes and a v2 public key may follow; the ECPrivateKey already has all we need.
    ec_key = _single(_SEQUENCE, info.take(_OCTET_STRING))
    if ec_key.take_integer() != 1:
        raise ValueError("unsupported ECPrivateKey version")
    d = ec_key.take(_OCTET_STRING)
    if len(d) > SIZE:
        raise ValueError("the SM2 private key is longer than 32 bytes")
    if ec_key.peek() == _EXPLICIT_0 and ec_key.take(_EXPLICIT_0) != _SM2_CURVE:
        raise ValueError("the private key is not on the SM2 curve")
    public = None
    if ec_key.peek() == _EXPLICIT_1:
        wrapper = _Reader(ec_key.take(_EXPLICIT_1))
        public = _take_bit_string(wrapper)
        wrapper.finish()
    ec_key.finish()
    return d.rjust(SIZE, b"\x00"), public


def encode_public_key(public: bytes) -> bytes:
    return _tlv(_SEQUENCE, _ALGORITHM + _bit_string(public))


def decode_public_key(der: bytes) -> bytes:
    info = _single(_SEQUENCE, der)
    _check_algorithm(info.take(_SEQUENCE))
    public = _take_bit_string(info)
    info.finish()
    return public


def _check_algorithm(body: bytes) -> None:
    if _tlv(_SEQUENCE, body) != _ALGORITHM:
        raise ValueError("not an SM2 key (expected id-ecPublicKey with the sm2p256v1 curve)")


def _bit_string(data: bytes) -> bytes:
    return _tlv(_BIT_STRING, b"\x00" + data)


def _take_bit_string(reader: _Reader) -> bytes:
    body = reader.take(_BIT_STRING)
    if not body or body[0] != 0:
        raise ValueError("malformed DER: a point must be a whole number of bytes")
    return body[1:]


def pem_encode(label: str, der: bytes) -> bytes:
    text = base64.b64encode(der).decode("ascii")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]).encode("ascii")


def pem_decode(label: str, data: bytes) -> bytes:
    """The DER inside the first PEM block with this label; text around the block is ignored."""
    text = data.decode("ascii", errors="replace")
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        raise ValueError(f"no {label} PEM block found")
    body = "".join(text[start + len(begin) : stop].split())
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the {label} PEM block is not valid base64") from exc

"""Alipay OpenAPI signatures, public-key mode, RSA2 (SHA256withRSA, PKCS#1 v1.5, base64).

Three different texts are signed, and each is built its own way:

- a request: every parameter except `sign` whose value is not empty, sorted by name, joined as `k=v&k=v` with the
  values as they are (not URL-encoded); `sign_type` is included;
- an answer: the exact text of the `<method>_response` JSON value as Alipay sent it. It is cut out of the raw body,
  never re-serialised, because key order, spacing and escapes would change the bytes that were signed;
- an async notify: every parameter except `sign` and `sign_type`, empty ones included, sorted, `k=v&k=v`.
"""

from __future__ import annotations

import base64
import binascii
import json
import textwrap
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ERROR_RESPONSE = "error_response"
_DECODER = json.JSONDecoder()
_BLANK = " \t\r\n"


class KeyFileError(ValueError):
    """A key file that is missing, unreadable or not an RSA key of at least 2048 bits."""


class ResponseShapeError(ValueError):
    """An answer that is not a JSON object of distinct members, or that lacks the method's response member."""


def request_sign_content(params: Mapping[str, str]) -> str:
    return "&".join(f"{name}={value}" for name, value in sorted(params.items()) if name != "sign" and value != "")


def notify_sign_content(params: Mapping[str, str]) -> str:
    return "&".join(f"{name}={value}" for name, value in sorted(params.items()) if name not in ("sign", "sign_type"))


def sign(key: rsa.RSAPrivateKey, content: str) -> str:
    return base64.b64encode(key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def verify(key: rsa.RSAPublicKey, content: str, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, InvalidSignature):
        return False
    return True


def load_private_key(path: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(_pem(path, "PRIVATE KEY"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise KeyFileError(f"{path}: RSA2 needs an RSA key of at least 2048 bits")
    return key


def load_public_key(path: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(_pem(path, "PUBLIC KEY"))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path}: not a PEM public key ({exc})") from exc
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise KeyFileError(f"{path}: RSA2 needs an RSA key of at least 2048 bits")
    return key


def _pem(path: str, label: str) -> bytes:
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read key file {path!r}: {exc}") from exc
    if text.startswith("-----BEGIN"):
        return text.encode("ascii")
    # Alipay's key tool saves bare base64 (PKCS#8 private key, X.509 SubjectPublicKeyInfo) without PEM armour.
    body = "\n".join(textwrap.wrap("".join(text.split()), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode("ascii")


def split_response(body: str, method: str) -> tuple[str, str | None]:
    """The raw text of the answer's `<method>_response` member (or of `error_response`, which the gateway sends when a
    request never reaches the method) and the `sign` member beside it, None when the answer is unsigned."""
    members = _members(body)
    for name in (method.replace(".", "_") + "_response", ERROR_RESPONSE):
        if name in members:
            start, end = members[name]
            break
    else:
        raise ResponseShapeError(f"answer has no {method.replace('.', '_')}_response member")
    if "sign" not in members:
        return body[start:end], None
    sign_start, sign_end = members["sign"]
    signature = json.loads(body[sign_start:sign_end])
    if not isinstance(signature, str):
        raise ResponseShapeError("the answer's sign is not a string")
    return body[start:end], signature


def _members(text: str) -> dict[str, tuple[int, int]]:
    """Where each top-level member's value starts and ends in `text`, a JSON object, found by decoding one value
    at a time from its offset, so the spans are exact whatever the spacing and escapes."""
    try:
        at = _skip(text, 0)
        if text[at : at + 1] != "{":
            raise ResponseShapeError("answer is not a JSON object")
        at = _skip(text, at + 1)
        spans: dict[str, tuple[int, int]] = {}
        while text[at : at + 1] != "}":
            if text[at : at + 1] != '"':
                raise ResponseShapeError(f"expected a member name at offset {at}")
            name, at = _DECODER.raw_decode(text, at)
            at = _skip(text, at)
            if text[at : at + 1] != ":":
                raise ResponseShapeError(f"expected ':' at offset {at}")
            start = _skip(text, at + 1)
            _, end = _DECODER.raw_decode(text, start)
            if name in spans:  # two members of one name: which one was signed would be ambiguous
                raise ResponseShapeError(f"member {name!r} appears twice")
            spans[name] = (start, end)
            at = _skip(text, end)
            if text[at : at + 1] == ",":
                at = _skip(text, at + 1)
            elif text[at : at + 1] != "}":
                raise ResponseShapeError(f"expected ',' or '}}' at offset {at}")
    except json.JSONDecodeError as exc:
        raise ResponseShapeError(f"answer is not JSON: {exc}") from exc
    if _skip(text, at + 1) != len(text):
        raise ResponseShapeError("text after the answer's JSON object")
    return spans


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _BLANK:
        at += 1
    return at

"""One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238), and the otpauth:// URI authenticator apps scan."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import quote, urlencode

STEP_S = 30
DIGITS = 6
# Secrets are 160 bits, the HMAC-SHA1 block the RFC recommends; base32 without padding, as apps expect.
_SECRET_BYTES = 20


def hotp(key: bytes, counter: int, *, digits: int = DIGITS, digest: str = "sha1") -> str:
    """RFC 4226 section 5.3: HMAC the big-endian counter, take 31 bits at the dynamic offset, keep `digits` digits."""
    mac = hmac.new(key, counter.to_bytes(8, "big"), getattr(hashlib, digest)).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def time_step(unix_time: float, *, step: int = STEP_S) -> int:
    """RFC 6238 T = floor((now - T0) / X) with T0 = 0."""
    return int(unix_time // step)


def totp(key: bytes, unix_time: float, *, step: int = STEP_S, digits: int = DIGITS, digest: str = "sha1") -> str:
    return hotp(key, time_step(unix_time, step=step), digits=digits, digest=digest)


def matching_step(key: bytes, code: str, unix_time: float, *, window: int = 1) -> int | None:
    """The time step within ±`window` steps of now whose code is `code`, else None.

    One step either side absorbs clock drift between the phone and the server (RFC 6238 section 5.2). Callers store
    the step they accepted and refuse it, or any earlier one, next time, so a code works once.
    """
    if len(code) != DIGITS or not code.isdigit():
        return None
    now = time_step(unix_time)
    found = None
    # Every candidate is compared, matched or not, so the time taken does not say which step matched.
    for candidate in range(now - window, now + window + 1):
        if hmac.compare_digest(hotp(key, candidate), code) and found is None:
            found = candidate
    return found


def new_secret() -> str:
    return base64.b32encode(secrets.token_bytes(_SECRET_BYTES)).decode().rstrip("=")


def secret_key(secret: str) -> bytes:
    """The key bytes of a base32 secret (padding optional, as apps display it)."""
    return base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))


def otpauth_uri(secret: str, *, account: str, issuer: str) -> str:
    """The Key Uri Format of Google Authenticator, which other authenticator apps share."""
    label = quote(f"{issuer}:{account}", safe=":@")
    query = urlencode(
        {"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS, "period": STEP_S}, quote_via=quote
    )
    return f"otpauth://totp/{label}?{query}"

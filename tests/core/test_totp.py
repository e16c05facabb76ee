"""HOTP (RFC 4226 Appendix D) and TOTP (RFC 6238 Appendix B) known-answer vectors, and the checks built on them."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from core.totp import hotp, matching_step, new_secret, otpauth_uri, secret_key, time_step, totp

RFC4226_KEY = b"12345678901234567890"
RFC4226_CODES = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]

# RFC 6238 Appendix B: 8 digits, 30-second steps, T0 = 0; each algorithm has its own seed.
RFC6238_SEEDS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
RFC6238_VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize("counter", range(10))
def test_hotp_rfc4226_vectors(counter: int) -> None:
    assert hotp(RFC4226_KEY, counter) == RFC4226_CODES[counter]


@pytest.mark.parametrize(("unix_time", "sha1", "sha256", "sha512"), RFC6238_VECTORS)
def test_totp_rfc6238_vectors(unix_time: int, sha1: str, sha256: str, sha512: str) -> None:
    for digest, expected in (("sha1", sha1), ("sha256", sha256), ("sha512", sha512)):
        assert totp(RFC6238_SEEDS[digest], unix_time, digits=8, digest=digest) == expected


def test_codes_of_the_neighbouring_steps_match_and_no_others() -> None:
    key, now = secret_key(new_secret()), 1_700_000_000.0
    step = time_step(now)
    for offset in (-1, 0, 1):
        assert matching_step(key, hotp(key, step + offset), now) == step + offset
    assert matching_step(key, hotp(key, step + 2), now) is None
    assert matching_step(key, hotp(key, step - 2), now) is None
    assert matching_step(key, "12345", now) is None
    assert matching_step(key, "abcdef", now) is None


def test_secret_round_trips_through_base32_and_the_uri() -> None:
    secret = new_secret()
    assert len(secret_key(secret)) == 20
    assert secret_key(secret.lower()) == secret_key(secret)
    uri = otpauth_uri(secret, account="dr-wang", issuer="岐黄中医互联网医院")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/岐黄中医互联网医院:dr-wang"
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert query == {
        "secret": secret,
        "issuer": "岐黄中医互联网医院",
        "algorithm": "SHA1",
        "digits": "6",
        "period": "30",
    }

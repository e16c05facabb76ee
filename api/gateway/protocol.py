"""The wire protocol of the integration gateway: what an integrated system sends, and the client half of it.

Every request under /api/v1/integration/ carries four headers:

- `X-App-Id`: the application id issued when an admin registered the app.
- `X-Timestamp`: Unix time in whole seconds; refused when more than 300 s (setting) from the server's clock.
- `X-Nonce`: 16–64 characters of `A–Z a–z 0–9 _ -`, fresh for every request; a nonce is accepted once per app
  while its timestamp is within the window (the gateway keeps nonces in PostgreSQL, so every API process agrees).
- `X-Signature`: base64 of the DER SM2 signature (GB/T 32918, SM3 with Z_A) over the canonical request, made with the
  app's private key and the default signer ID `1234567812345678` (GM/T 0009), which every SM2 library
  (including gmssl, which cannot change it) uses. The canonical request is the UTF-8 of these lines joined by "\\n":

      METHOD                   upper case
      TARGET                   the path as sent (percent-encoding kept), plus "?" and the query string as sent when
                               there is one; nothing is sorted or re-encoded
      TIMESTAMP                the X-Timestamp value
      NONCE                    the X-Nonce value
      SM3_HEX                  lower-case hex SM3 digest of the body bytes as sent (of the empty string when there is
                               no body; of the ciphertext when the body is encrypted)

Encrypted bodies (optional): with `X-Body-Encryption: sm4-gcm` the request body, if any, is
`nonce (12 bytes) ‖ SM4-GCM ciphertext ‖ tag (16 bytes)` under the app's SM4 key with associated data
`"{app_id}\\n{X-Nonce}\\nrequest"`, and the `Content-Type` names the plaintext. The answer to such a request is
encrypted the same way with associated data `"{app_id}\\n{X-Nonce}\\nresponse"` and carries the same header; answers
the gateway gives before it has verified the caller (401, 403, 429, 503) are never encrypted.

Key exchange: the app's SM4 key is made by the platform when the app is registered and at every key rotation, and
handed out only as an SM2 envelope (C1‖C3‖C2, base64) encrypted to the app's own public key, so only the holder of
the app's private key can read it; the admin who registers the app never sees it. The platform keeps it sealed at
rest with its PII key.
"""

from __future__ import annotations

import base64
import re
import secrets
import time

from core.crypto.sm import sm3_hex, sm4_gcm_decrypt, sm4_gcm_encrypt
from core.crypto.sm2 import DEFAULT_SIGNER_ID, Sm2PrivateKey

PREFIX = "/api/v1/integration/"
APP_ID = "X-App-Id"
TIMESTAMP = "X-Timestamp"
NONCE = "X-Nonce"
SIGNATURE = "X-Signature"
ENCRYPTION = "X-Body-Encryption"
SM4_GCM = "sm4-gcm"
SIGNER_ID = DEFAULT_SIGNER_ID
SM4_KEY_BYTES = 16

APP_ID_PATTERN = re.compile(r"[a-z0-9-]{1,40}")
NONCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
TIMESTAMP_PATTERN = re.compile(r"[0-9]{1,12}")


def request_target(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


def canonical_request(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return "\n".join((method.upper(), target, timestamp, nonce, sm3_hex(body))).encode()


def request_aad(app_id: str, nonce: str) -> bytes:
    return f"{app_id}\n{nonce}\nrequest".encode()


def response_aad(app_id: str, nonce: str) -> bytes:
    return f"{app_id}\n{nonce}\nresponse".encode()


def seal(sm4_key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    return sm4_gcm_encrypt(sm4_key, plaintext, aad)


def unseal(sm4_key: bytes, blob: bytes, aad: bytes) -> bytes:
    """ValueError when the blob is short, altered, or sealed with another key or for another request."""
    return sm4_gcm_decrypt(sm4_key, blob, aad)


def signed_headers(
    key: Sm2PrivateKey,
    app_id: str,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The client half: the four gateway headers for one request (`body` as it will be sent)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_urlsafe(24)
    signature = key.sign(canonical_request(method, target, stamp, nonce, body), SIGNER_ID)
    return {APP_ID: app_id, TIMESTAMP: stamp, NONCE: nonce, SIGNATURE: base64.b64encode(signature).decode()}


def open_key_envelope(key: Sm2PrivateKey, envelope: str) -> bytes:
    """The client half of key exchange: the app's SM4 key from the envelope the admin passed on."""
    return key.decrypt(base64.b64decode(envelope))

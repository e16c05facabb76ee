"""WeChat Pay API v3 cryptography: request signatures, response/callback verification, callback decryption.

RSA mode with the 微信支付公钥 (public-key mode): WeChat Pay signs with one key whose id (`PUB_KEY_ID_…`) arrives in
`Wechatpay-Serial`. Everything here is a pure function of its inputs, so the adapter and its tests share one
definition of every signed message.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEME = "WECHATPAY2-SHA256-RSA2048"
RESOURCE_ALGORITHM = "AEAD_AES_256_GCM"
_NONCE_ALPHABET = string.ascii_uppercase + string.digits


class VerificationFailed(Exception):
    """A message claiming to come from WeChat Pay failed a check; the text names the check."""


def load_private_key(path: str | Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} is not an RSA private key")
    return key


def load_public_key(path: str | Path) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{path} is not an RSA public key")
    return key


def new_nonce() -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(32))


def sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5), base64."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def lines(*parts: str | bytes) -> bytes:
    """WeChat Pay's sign string: every part followed by a newline, the last one included."""
    return b"".join((part.encode() if isinstance(part, str) else part) + b"\n" for part in parts)


def authorization(
    *,
    mchid: str,
    serial_no: str,
    key: rsa.RSAPrivateKey,
    method: str,
    target: str,
    body: bytes,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> str:
    """The `Authorization` header for one request; `target` is the path and query exactly as sent."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or new_nonce()
    signature = sign(key, lines(method, target, ts, nonce, body))
    return (
        f'{SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",timestamp="{ts}",serial_no="{serial_no}"'
    )


def jsapi_pay_params(
    *, appid: str, key: rsa.RSAPrivateKey, prepay_id: str, timestamp: int | None = None, nonce: str | None = None
) -> dict[str, str]:
    """What `wx.requestPayment` / `WeixinJSBridge.invoke('getBrandWCPayRequest')` needs to open the cashier."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or new_nonce()
    package = f"prepay_id={prepay_id}"
    return {
        "appId": appid,
        "timeStamp": ts,
        "nonceStr": nonce,
        "package": package,
        "signType": "RSA",
        "paySign": sign(key, lines(appid, ts, nonce, package)),
    }


@dataclass(frozen=True)
class Verifier:
    """Checks the signature WeChat Pay puts on its responses and callbacks: `timestamp\\nnonce\\nbody\\n`."""

    public_key: rsa.RSAPublicKey
    public_key_id: str
    # Messages signed further than this from our clock are refused, so a captured callback cannot be replayed later.
    window_s: int

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> None:
        found = {name.lower(): value for name, value in headers.items()}
        try:
            timestamp = found["wechatpay-timestamp"]
            nonce = found["wechatpay-nonce"]
            signature = found["wechatpay-signature"]
            serial = found["wechatpay-serial"]
        except KeyError as missing:
            raise VerificationFailed(f"header {missing.args[0]} is missing") from None
        # WeChat Pay omits the type on RSA messages; when present it must say RSA (an SM2 message needs another key).
        if found.get("wechatpay-signature-type", SCHEME) != SCHEME:
            raise VerificationFailed("unsupported Wechatpay-Signature-Type")
        if serial != self.public_key_id:
            raise VerificationFailed(f"signed with key {serial!r}, expected {self.public_key_id!r}")
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise VerificationFailed("Wechatpay-Timestamp is not a number")
        skew = abs((time.time() if now is None else now) - int(timestamp))
        if skew > self.window_s:
            raise VerificationFailed(f"signed {skew:.0f} s away from now (window {self.window_s} s)")
        try:
            raw = base64.b64decode(signature, validate=True)
            self.public_key.verify(raw, lines(timestamp, nonce, body), padding.PKCS1v15(), hashes.SHA256())
        except (binascii.Error, ValueError, InvalidSignature):
            raise VerificationFailed("signature does not verify") from None


def decrypt_resource(apiv3_key: bytes, resource: Mapping[str, Any]) -> bytes:
    """The plaintext of a callback's `resource` (AEAD_AES_256_GCM under the APIv3 key)."""
    if resource.get("algorithm") != RESOURCE_ALGORITHM:
        raise VerificationFailed(f"unsupported resource algorithm {resource.get('algorithm')!r}")
    try:
        nonce = str(resource["nonce"]).encode()
        associated_data = str(resource.get("associated_data") or "").encode()
        ciphertext = base64.b64decode(str(resource["ciphertext"]), validate=True)
        return AESGCM(apiv3_key).decrypt(nonce, ciphertext, associated_data)
    except (KeyError, binascii.Error, ValueError, InvalidTag):
        raise VerificationFailed("resource does not decrypt") from None

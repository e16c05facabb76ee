"""Sandbox RTC for dev and tests. Rooms are names derived from the call, so asking twice gives the same room; tokens
are HMAC-SM3-signed claims that `verify` checks the way a provider's media server would check its own tokens.

The signing key is derived from the sandbox peers' shared secret (`sandbox_notify_secret`) under its own label, so a
token never doubles as a signed callback or the other way round.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.sandbox import recorder_for
from core.crypto.sm import hmac_sm3
from core.settings import Settings
from models.consult import RtcRoom, RtcToken

SYSTEM = "rtc"
ENDPOINT = "sandbox://rtc"


class InvalidRtcToken(ValueError):
    """A token that is malformed, signed with another key, or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SandboxRtc:
    name = "sandbox"

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._key = hmac_sm3(settings.sandbox_notify_secret.encode(), b"qihuang sandbox rtc token")
        self._recorder = recorder_for(sessions, settings)

    async def create_room(self, *, visit_id: str, call_id: str) -> RtcRoom:
        await self._recorder.gate(SYSTEM, "create_room", call_id)
        digest = hmac_sm3(self._key, f"room\n{visit_id}\n{call_id}".encode()).hex()
        return RtcRoom(provider="sandbox", room_id=f"sbx-{digest[:24]}", endpoint=ENDPOINT)

    async def issue_token(self, *, room: RtcRoom, user_id: str, role: str, ttl_s: int) -> RtcToken:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        await self._recorder.gate(SYSTEM, "issue_token", f"{room.room_id}:{user_id}")
        issued = int(time.time())
        expires = issued + ttl_s
        claims = {
            "room": room.room_id,
            "sub": user_id,
            "role": role,
            "iat": issued,
            "exp": expires,
            # Two tokens for the same person and second still differ, so one can be told from the other in logs.
            "jti": secrets.token_hex(8),
        }
        body = _b64(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
        return RtcToken(token=f"{body}.{self._sign(body)}", expires_at=datetime.fromtimestamp(expires, UTC))

    def verify(self, token: str, *, now: float | None = None) -> dict[str, Any]:
        """The claims of a valid token (room, sub, role, iat, exp, jti); `InvalidRtcToken` otherwise."""
        body, _, signature = token.partition(".")
        if not body or not hmac.compare_digest(signature, self._sign(body)):
            raise InvalidRtcToken("signature does not verify")
        try:
            claims: dict[str, Any] = json.loads(_unb64(body))
        except (binascii.Error, ValueError) as exc:
            raise InvalidRtcToken("malformed claims") from exc
        if claims.get("exp", 0) <= (time.time() if now is None else now):
            raise InvalidRtcToken("expired")
        return claims

    def _sign(self, body: str) -> str:
        return _b64(hmac_sm3(self._key, body.encode()))

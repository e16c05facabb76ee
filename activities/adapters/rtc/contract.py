"""Contract every `Rtc` implementation must pass.

class TestMyRtc(RtcContract):
    @pytest.fixture
    def adapter(self): return MyRtc(...)
    @pytest.fixture
    def verifier(self): return MyProviderTokenCheck(...)   # see `RtcVerifier`
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from activities.adapters.rtc import Rtc


class RtcVerifier(Protocol):
    """Checks a token the way the provider's media server does (its test environment, or a local check)."""

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims: at least `room`, `sub` and `exp` (seconds since the epoch); raises if invalid."""
        ...


class RtcContract:
    def test_implements_protocol(self, adapter: Rtc) -> None:
        assert isinstance(adapter, Rtc)

    async def test_one_room_per_call(self, adapter: Rtc) -> None:
        visit = f"v-{uuid.uuid4().hex[:10]}"
        first = await adapter.create_room(visit_id=visit, call_id="call-1")
        assert first.room_id and first.endpoint
        assert await adapter.create_room(visit_id=visit, call_id="call-1") == first
        assert (await adapter.create_room(visit_id=visit, call_id="call-2")).room_id != first.room_id

    async def test_token_admits_its_user_to_its_room(self, adapter: Rtc, verifier: RtcVerifier) -> None:
        room = await adapter.create_room(visit_id=f"v-{uuid.uuid4().hex[:10]}", call_id="call-1")
        issued = await adapter.issue_token(room=room, user_id="u-doctor", role="doctor", ttl_s=600)
        claims = verifier.verify(issued.token)
        assert (claims["room"], claims["sub"]) == (room.room_id, "u-doctor")
        assert abs(claims["exp"] - time.time() - 600) < 5
        assert abs(issued.expires_at - datetime.now(UTC) - timedelta(seconds=600)) < timedelta(seconds=5)

    async def test_tokens_differ_per_user(self, adapter: Rtc) -> None:
        room = await adapter.create_room(visit_id=f"v-{uuid.uuid4().hex[:10]}", call_id="call-1")
        patient = await adapter.issue_token(room=room, user_id="u-patient", role="patient", ttl_s=600)
        doctor = await adapter.issue_token(room=room, user_id="u-doctor", role="doctor", ttl_s=600)
        assert patient.token != doctor.token

from __future__ import annotations

import time

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.rtc.contract import RtcContract
from activities.adapters.rtc.sandbox import InvalidRtcToken, SandboxRtc
from core.settings import Settings


@pytest.fixture
def adapter(sessions, settings) -> SandboxRtc:  # type: ignore[no-untyped-def]
    return SandboxRtc(sessions, settings)


@pytest.fixture
def verifier(adapter: SandboxRtc) -> SandboxRtc:
    return adapter


class TestSandboxRtc(RtcContract):
    pass


async def test_a_token_is_refused_when_altered_foreign_or_expired(
    adapter: SandboxRtc, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    room = await adapter.create_room(visit_id="v-1", call_id="call-1")
    token = (await adapter.issue_token(room=room, user_id="u-1", role="patient", ttl_s=60)).token
    body, _, signature = token.partition(".")
    with pytest.raises(InvalidRtcToken):
        adapter.verify(body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + signature)
    with pytest.raises(InvalidRtcToken):
        adapter.verify(body + ".")
    other = SandboxRtc(sessions, settings.model_copy(update={"sandbox_notify_secret": "another-secret"}))
    with pytest.raises(InvalidRtcToken):
        other.verify(token)
    with pytest.raises(InvalidRtcToken):
        adapter.verify(token, now=time.time() + 61)


async def test_ttl_must_be_positive(adapter: SandboxRtc) -> None:
    room = await adapter.create_room(visit_id="v-1", call_id="call-1")
    with pytest.raises(ValueError):
        await adapter.issue_token(room=room, user_id="u-1", role="patient", ttl_s=0)

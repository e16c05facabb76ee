"""Real-time audio/video for consultations (8.5.7). The media flows between the apps and the provider; the hospital
only opens a room per call and signs each participant's admission to it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from models.consult import RtcRoom, RtcToken


@runtime_checkable
class Rtc(Protocol):
    name: str

    async def create_room(self, *, visit_id: str, call_id: str) -> RtcRoom:
        """The room for call `call_id` of the visit; asking again for the same call gives the same room."""
        ...

    async def issue_token(self, *, room: RtcRoom, user_id: str, role: str, ttl_s: int) -> RtcToken:
        """Admission of `user_id` (in the visit as `role`, e.g. "patient") to `room` for `ttl_s` seconds."""
        ...

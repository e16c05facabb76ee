"""Consultation chat and calls (8.5.7): message kinds and what an RTC provider hands back for a call."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class MessageKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VOICE = "voice"
    # Written by the platform, not by a person (e.g. a notice that the visit ended).
    SYSTEM = "system"
    # A call started or ended; the message names the call.
    CALL = "call"


class CallMedia(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"


class RtcRoom(BaseModel):
    """A room on the RTC provider that the participants of one call join."""

    provider: str = Field(description="RTC 服务商", examples=["sandbox"])
    room_id: str = Field(description="房间号", examples=["sbx-3f1c0a9d2b7e4c5a6f8e9d0c"])
    # What the client SDK connects to: a URL or the provider's application id.
    endpoint: str = Field(description="客户端 SDK 连接的地址或应用标识", examples=["sandbox://rtc"])


class RtcToken(BaseModel):
    """Admits one user to one room until `expires_at`."""

    token: str
    expires_at: datetime

"""Outbound messages: SMS, app push, WeChat template messages."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from models.common import Channel


@runtime_checkable
class Notifier(Protocol):
    async def send(
        self, *, idempotency_key: str, channel: Channel, phone: str | None, user_id: str, title: str, body: str
    ) -> str:
        """Send one message through `channel` (SMS to `phone`; app push and WeChat to the user's registered
        devices and account); return the peer's message id. The same key never sends twice."""
        ...

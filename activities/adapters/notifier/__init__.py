"""Outbound messages: SMS, app push, WeChat template messages."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Notifier(Protocol):
    async def send(self, *, idempotency_key: str, phone: str | None, user_id: str, title: str, body: str) -> str:
        """Send one message; return the peer's message id. The same key never sends twice."""
        ...

"""Real-name verification of name + ID-card number + phone (实名认证)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from models.identity import RealNameResult


@runtime_checkable
class RealName(Protocol):
    async def verify(self, *, idempotency_key: str, name: str, id_card_no: str, phone: str) -> RealNameResult: ...

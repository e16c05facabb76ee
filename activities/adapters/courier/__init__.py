"""A courier: ships a parcel, reports its progress by webhook, and answers tracking queries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from models.fulfilment import CourierEvent, Shipment


class Consignee(BaseModel):
    """Built inside activities from decrypted columns; never put in workflow payloads."""

    name: str
    phone: str
    address: str


@runtime_checkable
class Courier(Protocol):
    async def create_shipment(self, *, idempotency_key: str, order_ref: str, consignee: Consignee) -> Shipment: ...

    async def track(self, *, waybill_no: str) -> list[CourierEvent]: ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> CourierEvent:
        """Verify and decode a status webhook; raise `InvalidCallback` if it does not verify."""
        ...

"""Sandbox courier: one shipment per order, progress pushed as signed webhooks by the simulator (`advance`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.courier import Consignee
from activities.adapters.errors import AdapterRefusal, InvalidCallback
from activities.adapters.sandbox import recorder_for, sign_callback, table, utcnow, verify_callback
from core.crypto.sm import mask, sm3_hex
from core.settings import Settings
from models.fulfilment import CourierEvent, CourierStatus, Shipment
from models.tables.sandbox import SandboxShipment

SYSTEM = "courier"
_shipments = table(SandboxShipment)
CARRIER = "sandbox"
_TERMINAL = {CourierStatus.DELIVERED, CourierStatus.FAILED}


def waybill_for(order_ref: str) -> str:
    """Deterministic waybill number: "SB" and 12 digits derived from the order reference."""
    return f"SB{int(hashlib.sha256(order_ref.encode()).hexdigest()[:15], 16) % 10**12:012d}"


class SandboxCourier:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings
        self._recorder = recorder_for(sessions, settings)

    async def create_shipment(self, *, idempotency_key: str, order_ref: str, consignee: Consignee) -> Shipment:
        # The consignee is PII: the record keeps a digest of the name and masked phone only, never the address.
        request = {
            "order_ref": order_ref,
            "consignee_digest": sm3_hex(consignee.name.encode()),
            "phone": mask(consignee.phone),
        }

        async def perform(session: AsyncSession) -> dict[str, Any]:
            waybill_no = waybill_for(order_ref)
            created = CourierEvent(waybill_no=waybill_no, status=CourierStatus.CREATED, occurred_at=utcnow())
            # `order_ref` is unique: a second key for the same order gets the same parcel, not a second one.
            await session.execute(
                insert(SandboxShipment)
                .values(
                    waybill_no=waybill_no,
                    order_ref=order_ref,
                    status=CourierStatus.CREATED.value,
                    events=[created.model_dump(mode="json")],
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing()
            )
            return Shipment(waybill_no=waybill_no, carrier=CARRIER).model_dump(mode="json")

        response = await self._recorder.once(SYSTEM, "create_shipment", idempotency_key, request, perform)
        return Shipment.model_validate(response)

    async def track(self, *, waybill_no: str) -> list[CourierEvent]:
        await self._recorder.gate(SYSTEM, "track", waybill_no)
        async with self._sessions() as session:
            events = await session.scalar(select(_shipments.c.events).where(_shipments.c.waybill_no == waybill_no))
        if events is None:
            raise AdapterRefusal("WAYBILL_NOT_FOUND", "运单不存在")
        return [CourierEvent.model_validate(event) for event in events]

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> CourierEvent:
        verify_callback(self._settings.sandbox_notify_secret, headers, body)
        try:
            return CourierEvent.model_validate_json(body)
        except ValueError as exc:
            raise InvalidCallback("webhook body is not a courier event") from exc

    # --- simulator hook (used by the API's sandbox endpoints and by tests) -------------------------------------------

    async def advance(
        self, waybill_no: str, status: CourierStatus, *, note: str = "", signed_at: datetime | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The parcel moves: append an event and return the signed webhook the courier would push.

        Refused once the parcel was delivered or failed. `signed_at` backdates the signature, for replay tests.
        """
        async with self._sessions() as session, session.begin():
            shipment = await session.get(SandboxShipment, waybill_no, with_for_update=True)
            if shipment is None:
                raise AdapterRefusal("WAYBILL_NOT_FOUND", "运单不存在")
            if shipment.status in _TERMINAL:
                raise AdapterRefusal("SHIPMENT_CLOSED", "运单已妥投或已终止，不能再更新状态")
            event = CourierEvent(waybill_no=waybill_no, status=status, occurred_at=utcnow(), note=note)
            # A new list, so the JSONB column is seen as changed (in-place appends are not tracked).
            shipment.events = [*shipment.events, event.model_dump(mode="json")]
            shipment.status = status.value
        body = event.model_dump_json().encode()
        return sign_callback(self._settings.sandbox_notify_secret, body, at=signed_at), body

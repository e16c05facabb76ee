"""Fulfilment steps: the pharmacy order, the courier, the pickup code, the read model."""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.adapters.courier import Consignee, Courier
from activities.adapters.pharmacy import Pharmacy
from activities.errors import business_error, refusals_are_final
from core.crypto.sm import FieldCipher
from models.fulfilment import CourierEvent, FulfilmentInput, FulfilmentState, PharmacyOrder, Shipment
from models.prescription import PrescriptionDraft
from models.tables import Fulfilment, Prescription


class FulfilmentActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cipher: FieldCipher,
        pharmacy: Pharmacy,
        courier: Courier,
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._pharmacy = pharmacy
        self._courier = courier

    async def _prescription(self, prescription_id: str) -> Prescription:
        async with self._sessions() as session:
            row = await session.get(Prescription, prescription_id)
        if row is None:
            raise business_error("RX_NOT_FOUND", "处方不存在")
        return row

    @activity.defn
    async def submit_to_pharmacy(self, prescription_id: str) -> PharmacyOrder:
        draft = PrescriptionDraft.model_validate((await self._prescription(prescription_id)).draft)
        return await refusals_are_final(
            self._pharmacy.submit_order(
                idempotency_key=f"fulfil-{prescription_id}:pharmacy",
                prescription_id=prescription_id,
                items=draft.items,
                doses=draft.doses,
            )
        )

    @activity.defn
    async def cancel_pharmacy_order(self, prescription_id: str, order_no: str) -> None:
        await self._pharmacy.cancel_order(
            idempotency_key=f"fulfil-{prescription_id}:pharmacy-cancel", order_no=order_no
        )

    @activity.defn
    async def book_courier(self, prescription_id: str) -> Shipment:
        row = await self._prescription(prescription_id)
        consignee = Consignee(
            name=self._cipher.decrypt("name", row.recipient_enc) or "",
            phone=self._cipher.decrypt("phone", row.phone_enc) or "",
            address=self._cipher.decrypt("address", row.address_enc) or "",
        )
        return await refusals_are_final(
            self._courier.create_shipment(
                idempotency_key=f"fulfil-{prescription_id}:courier", order_ref=prescription_id, consignee=consignee
            )
        )

    @activity.defn
    async def track_shipment(self, waybill_no: str) -> list[CourierEvent]:
        return await self._courier.track(waybill_no=waybill_no)

    @activity.defn
    async def issue_pickup_code(self, prescription_id: str) -> str:
        """A 6-digit code, stored encrypted; re-running keeps the first code. Returns it only for the notice."""
        code = f"{secrets.randbelow(10**6):06d}"
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Fulfilment)
                .where(col(Fulfilment.prescription_id) == prescription_id, col(Fulfilment.pickup_code_enc).is_(None))
                .values(pickup_code_enc=self._cipher.encrypt("pickup_code", code))
            )
            stored = (
                await session.execute(
                    select(col(Fulfilment.pickup_code_enc)).where(col(Fulfilment.prescription_id) == prescription_id)
                )
            ).scalar()
        return self._cipher.decrypt("pickup_code", stored) or ""

    @activity.defn
    async def verify_pickup_code(self, prescription_id: str, code: str) -> bool:
        async with self._sessions() as session, session.begin():
            row = await session.get(Fulfilment, prescription_id, with_for_update=True)
            if row is None or row.pickup_code_enc is None:
                return False
            expected = self._cipher.decrypt("pickup_code", row.pickup_code_enc) or ""
            matched = hmac.compare_digest(expected.encode(), code.encode())
            if not matched:
                row.failed_attempts += 1
            return matched

    @activity.defn
    async def record_fulfilment(self, fulfilment: FulfilmentInput, state: FulfilmentState) -> None:
        values = {
            "stage": state.stage.value,
            "pharmacy_order_no": state.pharmacy_order_no,
            "waybill_no": state.waybill_no,
            "events": [event.model_dump(mode="json") for event in state.events],
            "signed_at": datetime.now(UTC) if state.stage.value == "signed" else None,
            "updated_at": datetime.now(UTC),
        }
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(Fulfilment)
                .values(
                    prescription_id=fulfilment.prescription_id,
                    patient_id=fulfilment.patient_id,
                    pickup=fulfilment.pickup.value,
                    **values,
                )
                .on_conflict_do_update(index_elements=["prescription_id"], set_=values)
            )

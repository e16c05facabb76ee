"""Fulfilment steps: routing to a pharmacy, the pharmacy order and its signed re-check, the courier, the pickup code,
the read model."""

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
from activities.errors import business_error, refusals_are_final
from activities.pharmacy_routing import NoPharmacy, PharmacyNetwork, RouteRequest, choose_pharmacy
from activities.signatures import Signatures
from core.crypto.sm import FieldCipher
from models.fulfilment import (
    OWN_PHARMACY,
    CourierEvent,
    DispenseCheck,
    FulfilmentInput,
    FulfilmentState,
    PharmacyOrder,
    PharmacyRoute,
    RecheckSignRequest,
    Shipment,
)
from models.prescription import PickupMethod, PrescriptionDraft
from models.signature import SignatureRecord
from models.tables import Fulfilment, Prescription

RECHECK_EVIDENCE = "rx.rechecked"


class FulfilmentActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cipher: FieldCipher,
        pharmacies: PharmacyNetwork,
        courier: Courier,
        signatures: Signatures,
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._pharmacies = pharmacies
        self._courier = courier
        self._signatures = signatures

    async def _prescription(self, prescription_id: str) -> Prescription:
        async with self._sessions() as session:
            row = await session.get(Prescription, prescription_id)
        if row is None:
            raise business_error("RX_NOT_FOUND", "处方不存在")
        return row

    @activity.defn
    async def route_prescription(self, prescription_id: str) -> PharmacyRoute:
        """Choose the pharmacy by the routing rule (activities/pharmacy_routing.py), asking each candidate's adapter
        for stock. No pharmacy able to take it is a business refusal (`NO_PHARMACY`), unless one could not be asked,
        which is retried."""
        row = await self._prescription(prescription_id)
        draft = PrescriptionDraft.model_validate(row.draft)
        request = RouteRequest(
            pickup=PickupMethod(row.pickup or PickupMethod.HOSPITAL.value),
            chosen=row.pharmacy_choice,
            decoction=row.decoction_service,
            address=self._cipher.decrypt("address", row.address_enc) or "",
        )

        async def shortages(candidate):  # type: ignore[no-untyped-def]
            adapter = self._pharmacies.adapter_for(candidate)
            return await adapter.check_stock(items=draft.items, doses=draft.doses)

        try:
            return await choose_pharmacy(
                await self._pharmacies.candidates(), request, shortages, self._pharmacies.prefer_own
            )
        except NoPharmacy as none:
            if none.retry:
                raise RuntimeError(none.reason) from none
            raise business_error("NO_PHARMACY", none.reason) from none

    @activity.defn
    async def submit_to_pharmacy(self, prescription_id: str, pharmacy_id: str | None = None) -> PharmacyOrder:
        """To the routed pharmacy; flows from before routing (no `pharmacy_id`) use the hospital's own."""
        draft = PrescriptionDraft.model_validate((await self._prescription(prescription_id)).draft)
        pharmacy = await self._pharmacies.adapter(pharmacy_id)
        return await refusals_are_final(
            pharmacy.submit_order(
                idempotency_key=_pharmacy_key(prescription_id, pharmacy_id),
                prescription_id=prescription_id,
                items=draft.items,
                doses=draft.doses,
            )
        )

    @activity.defn
    async def cancel_pharmacy_order(self, prescription_id: str, order_no: str, pharmacy_id: str | None = None) -> None:
        pharmacy = await self._pharmacies.adapter(pharmacy_id)
        await pharmacy.cancel_order(
            idempotency_key=f"{_pharmacy_key(prescription_id, pharmacy_id)}-cancel", order_no=order_no
        )

    @activity.defn
    async def sign_recheck(self, prescription_id: str, check: DispenseCheck) -> SignatureRecord:
        """The dispensing pharmacist's SM2 signature over the prescription as paid, with the decision and the
        pharmacy, timestamped and put on the evidence ledger like the review pharmacist's approval."""
        row = await self._prescription(prescription_id)
        signed_at = datetime.now(UTC)
        request = recheck_request(row, check.pharmacist_id, check.pharmacy_id, check.approve, check.note)
        return await self._signatures.sign(
            check.pharmacist_id,
            request.digest(signed_at),
            signed_at,
            request.reason,
            kind=RECHECK_EVIDENCE,
            subject=f"prescription:{prescription_id}",
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
            "pharmacy_id": state.pharmacy.pharmacy_id if state.pharmacy else None,
            "pharmacy_reason": state.pharmacy.reason if state.pharmacy else None,
            "recheck": state.recheck.model_dump(mode="json") if state.recheck else None,
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


def _pharmacy_key(prescription_id: str, pharmacy_id: str | None) -> str:
    """The idempotency key of the order; the own pharmacy's is the one flows used before routing."""
    base = f"fulfil-{prescription_id}:pharmacy"
    return base if pharmacy_id in (None, OWN_PHARMACY) else f"{base}:{pharmacy_id}"


def recheck_request(
    row: Prescription, pharmacist_id: str, pharmacy_id: str, approve: bool, note: str
) -> RecheckSignRequest:
    """What a re-check signs: rebuilt the same way when the signature is checked later."""
    return RecheckSignRequest(
        prescription_id=row.id,
        revision=row.revision,
        patient_id=row.patient_id,
        draft=PrescriptionDraft.model_validate(row.draft),
        signer_id=pharmacist_id,
        reason=note,
        pharmacy_id=pharmacy_id,
        approve=approve,
    )

"""Prescription steps: rule pre-review with stock, pricing, signatures, the read model, delivery details."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.adapters.pharmacy import Pharmacy
from activities.errors import business_error
from activities.rules.engine import RuleEngine
from activities.signatures import Signatures
from activities.visits import load_identity
from core.crypto.sm import FieldCipher
from models.prescription import (
    CheckResult,
    ConfirmPrescription,
    Finding,
    ForcedThrough,
    PrescriptionDraft,
    PrescriptionInput,
    PrescriptionState,
    PricedLine,
    PricedPrescription,
    RxCheckRequest,
    Severity,
    SignRequest,
    verdict_for,
)
from models.signature import SignatureRecord
from models.tables import AuditEvent, Doctor, Herb, Prescription

FORCED_ACTION = "prescription.forced"


class PrescriptionActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cipher: FieldCipher,
        pharmacy: Pharmacy,
        engine: RuleEngine,
        signatures: Signatures,
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._pharmacy = pharmacy
        self._engine = engine
        self._signatures = signatures

    @activity.defn
    async def check_prescription(self, request: RxCheckRequest) -> CheckResult:
        """The rule pre-review (前置审方) plus a stock check at the pharmacy; short stock blocks issuing (8.2.6.4)."""
        async with self._sessions() as session:
            identity = await load_identity(session, self._cipher, request.patient_id)
        draft = request.draft
        result = self._engine.check(draft.check_request(identity.id_card_no, date.today()))
        shortages = await self._pharmacy.check_stock(items=draft.items, doses=draft.doses)
        async with self._sessions() as session:
            disabled = (
                await session.scalars(
                    select(col(Herb.name)).where(
                        col(Herb.name).in_({item.herb for item in draft.items}), col(Herb.active).is_(False)
                    )
                )
            ).all()
        findings = (
            list(result.findings)
            + [
                Finding(
                    code="HERB_DISABLED",
                    severity=Severity.BLOCK,
                    herbs=[name],
                    message=f"{name}已在药品目录中禁用，不能开具",
                    source="药品目录",
                )
                for name in sorted(disabled)
            ]
            + [
                Finding(
                    code="STOCK_SHORT",
                    severity=Severity.BLOCK,
                    herbs=[short.herb],
                    message=(
                        f"{short.herb}库存不足：需要{short.needed_g:g}克，现有{short.available_g:g}克，"
                        f"缺{short.needed_g - short.available_g:g}克"
                    ),
                    source="药房库存",
                )
                for short in shortages
            ]
        )
        return CheckResult(verdict=verdict_for(findings), findings=findings)

    @activity.defn
    async def price_prescription(self, draft: PrescriptionDraft) -> PricedPrescription:
        names = {item.herb for item in draft.items}
        async with self._sessions() as session:
            prices = dict(
                (
                    await session.execute(
                        select(col(Herb.name), col(Herb.price_fen_per_100g)).where(col(Herb.name).in_(names))
                    )
                ).all()
            )
        lines = []
        for item in draft.items:
            if item.herb not in prices:
                raise business_error("HERB_NOT_IN_CATALOGUE", f"药房目录中没有{item.herb}")
            grams = Decimal(str(item.dose_g)) * draft.doses
            amount = (grams * prices[item.herb] / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
            lines.append(PricedLine(herb=item.herb, grams_total=float(grams), amount_fen=int(amount)))
        return PricedPrescription(total_fen=sum(line.amount_fen for line in lines), lines=lines)

    @activity.defn
    async def sign_prescription(self, request: SignRequest) -> SignatureRecord:
        """The signer's SM2 signature over the SM3 digest of the canonical prescription as it stands (with the signer,
        the reason and the time of signing), timestamped by the TSA."""
        signed_at = datetime.now(UTC)
        return await self._signatures.sign(
            request.signer_id,
            request.digest(signed_at),
            signed_at,
            request.reason,
            kind="rx.signed",
            subject=f"prescription:{request.prescription_id}",
        )

    @activity.defn
    async def record_prescription(
        self, prescription: PrescriptionInput, state: PrescriptionState, draft: PrescriptionDraft
    ) -> None:
        values = {
            "stage": state.stage.value,
            "revision": state.revision,
            "draft": draft.model_dump(mode="json"),
            "verdict": state.check.verdict.value if state.check else None,
            "findings": [f.model_dump(mode="json") for f in state.check.findings] if state.check else [],
            "signatures": [s.model_dump(mode="json") for s in state.doctor_signatures]
            + ([state.pharmacist_signature.model_dump(mode="json")] if state.pharmacist_signature else []),
            "total_fen": state.total_fen,
            "pickup": state.pickup.value if state.pickup else None,
            "bill_id": state.bill_id,
            "reviewed_by": state.pharmacist_signature.signer_id if state.pharmacist_signature else None,
            "review_reason": state.review_reason,
            "submitted_at": state.submitted_at,
            "claimed_by": state.claimed_by,
            "claim_expires_at": state.claim_expires_at,
            "forced": state.forced,
            "forced_reason": state.forced_reason,
            "updated_at": datetime.now(UTC),
        }
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(Prescription)
                .values(
                    id=prescription.prescription_id,
                    visit_id=prescription.visit_id,
                    patient_id=prescription.patient_id,
                    doctor_id=prescription.doctor_id,
                    renewed_from=prescription.renewed_from,
                    **values,
                )
                .on_conflict_do_update(index_elements=["id"], set_=values)
            )

    @activity.defn
    async def save_delivery_details(self, prescription_id: str, confirmation: ConfirmPrescription) -> None:
        """Delivery address, recipient and phone are PII: stored encrypted on the prescription row only."""
        async with self._sessions() as session, session.begin():
            row = await session.get(Prescription, prescription_id)
            if row is None:
                raise business_error("RX_NOT_FOUND", "处方不存在")
            row.pickup = confirmation.pickup.value
            row.address_enc = self._cipher.encrypt("address", confirmation.address)
            row.recipient_enc = self._cipher.encrypt("name", confirmation.recipient)
            row.phone_enc = self._cipher.encrypt("phone", confirmation.phone)
            row.pharmacy_choice = confirmation.pharmacy_id
            row.decoction_service = confirmation.decoction_service

    @activity.defn
    async def record_forced(self, forced: ForcedThrough) -> None:
        """The special record 8.3.1.4 asks for: an audit row per forced re-signing, written once however often the
        step is retried (the prescription's row lock keeps a retry from racing a slow first attempt)."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                select(col(Prescription.id)).where(col(Prescription.id) == forced.prescription_id).with_for_update()
            )
            recorded = await session.scalar(
                select(col(AuditEvent.id)).where(
                    col(AuditEvent.action) == FORCED_ACTION,
                    col(AuditEvent.subject_id) == forced.prescription_id,
                    col(AuditEvent.detail)["count"].astext == str(forced.count),
                )
            )
            if recorded is not None:
                return
            doctor_user = await session.scalar(select(col(Doctor.user_id)).where(col(Doctor.id) == forced.doctor_id))
            session.add(
                AuditEvent(
                    actor_user_id=doctor_user,
                    action=FORCED_ACTION,
                    subject_type="prescription",
                    subject_id=forced.prescription_id,
                    reason=forced.justification,
                    detail={"revision": forced.revision, "count": forced.count, "returned_by": forced.returned_by},
                )
            )

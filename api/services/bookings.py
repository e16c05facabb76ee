"""Booking a slot: PostgreSQL decides who gets it in one statement, then the Visit flow starts for the winner.

Losers get `SLOT_TAKEN` at once with the doctor's next free slots. A hold carries its own expiry, so a request or
worker that dies after the hold never keeps the slot: once `held_until` passes the slot counts as open again.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from api.errors import Problem
from api.services.temporal_calls import workflow_call
from core.settings import Settings
from models.tables import Patient, RevisitEligibility, Slot
from models.visit import BookingRequest, VisitInput, VisitState
from workflows.visit import VisitWorkflow, visit_workflow_id

# The hold outlives the payment window a little, so the Visit flow always releases or confirms it first.
HOLD_GRACE = timedelta(minutes=2)

_HOLD = text(
    """
    UPDATE slots
       SET status = 'held', visit_id = :visit_id, patient_id = :patient_id, held_until = :held_until
     WHERE id = :slot_id
       AND starts_at > now()
       AND (status = 'open' OR (status = 'held' AND held_until < now()))
    RETURNING id
    """
)


@dataclass
class Held:
    slot: Slot
    visit_id: str


async def next_free_slots(session: AsyncSession, doctor_id: str, limit: int = 5) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    rows = (
        await session.execute(
            select(col(Slot.id), col(Slot.starts_at))
            .where(
                col(Slot.doctor_id) == doctor_id,
                col(Slot.starts_at) > now,
                or_(col(Slot.status) == "open", (col(Slot.status) == "held") & (col(Slot.held_until) < now)),
            )
            .order_by(col(Slot.starts_at))
            .limit(limit)
        )
    ).all()
    return [{"slot_id": row.id, "starts_at": row.starts_at.isoformat()} for row in rows]


async def check_can_book(session: AsyncSession, patient_id: str, slot: Slot) -> None:
    patient = await session.get(Patient, patient_id)
    if patient is None or patient.verified_at is None:
        raise Problem(403, "IDENTITY_NOT_VERIFIED", "未完成实名认证", "请先完成实名认证再预约挂号")
    eligibility = await session.get(RevisitEligibility, (patient_id, slot.disease_code))
    now = datetime.now(UTC)
    if (
        eligibility is None
        or eligibility.status != "eligible"
        or eligibility.valid_until is None
        or eligibility.valid_until <= now
    ):
        raise Problem(
            403,
            "NOT_ELIGIBLE_FOR_REVISIT",
            "不符合在线复诊条件",
            "该号源仅限已通过本病种复诊预判的患者预约，请先进行复诊预判",
            disease_code=slot.disease_code,
        )


async def hold_slot(session: AsyncSession, settings: Settings, patient_id: str, slot_id: str) -> Held:
    slot = await session.get(Slot, slot_id)
    if slot is None:
        raise Problem(404, "NOT_FOUND", "号源不存在", f"号源 {slot_id} 不存在")
    await check_can_book(session, patient_id, slot)
    visit_id = f"{slot_id}-{secrets.token_hex(4)}"
    held_until = datetime.now(UTC) + timedelta(seconds=settings.registration_pay_window_s) + HOLD_GRACE
    won = (
        await session.execute(
            _HOLD,
            {"visit_id": visit_id, "patient_id": patient_id, "held_until": held_until, "slot_id": slot_id},
        )
    ).scalar()
    await session.commit()
    if won is None:
        await session.refresh(slot)
        if slot.patient_id == patient_id and slot.visit_id is not None and slot.status in ("held", "booked"):
            return Held(slot=slot, visit_id=slot.visit_id)  # this patient already holds it
        raise Problem(
            409,
            "SLOT_TAKEN",
            "号源已被预约",
            "该号源已被其他患者预约，请选择其他号源",
            next_free=await next_free_slots(session, slot.doctor_id),
        )
    await session.refresh(slot)
    return Held(slot=slot, visit_id=visit_id)


def visit_input(settings: Settings, held: Held, patient_id: str) -> VisitInput:
    slot = held.slot
    return VisitInput(
        visit_id=held.visit_id,
        patient_id=patient_id,
        doctor_id=slot.doctor_id,
        slot_id=slot.id,
        disease_code=slot.disease_code,
        fee_fen=slot.fee_fen,
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
        channel=settings.adapter_payment,
        pay_window_s=settings.registration_pay_window_s,
        accept_window_s=settings.doctor_accept_window_s,
        review_sla_s=settings.review_sla_s,
        rx_pay_window_s=settings.prescription_pay_window_s,
        delivery_sla_s=settings.delivery_sla_s,
    )


async def start_visit(client: Client, settings: Settings, held: Held, patient_id: str) -> VisitState:
    """Update-with-Start: creates the Visit (or finds it) and answers with the bill to pay."""
    start = WithStartWorkflowOperation(
        VisitWorkflow.run,
        visit_input(settings, held, patient_id),
        id=visit_workflow_id(held.visit_id),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=settings.task_queue,
    )
    return await workflow_call(
        client.execute_update_with_start_workflow(
            VisitWorkflow.book, BookingRequest(patient_id=patient_id), start_workflow_operation=start
        )
    )

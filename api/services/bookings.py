"""Booking a slot: PostgreSQL decides who gets it in one statement, then the Visit flow starts for the winner.

At a famous doctor's release time thousands of patients press "book" in the same second, so the attempt is one
round trip: a single statement reads the patient's standing (real-name verification, revisit eligibility for the
slot's disease, booking block, no-shows since the last block) and, only if all of it allows, takes the slot with a
conditional UPDATE. Row locking in that UPDATE decides the winner; everyone else learns why not from the same
answer, which for a refused attempt also lists the doctor's next free slots.

A hold carries its own expiry, so a request or worker that dies after the hold never keeps the slot: once
`held_until` passes the slot counts as open again, and the lapsed Visit flow can no longer confirm it
(`confirm_slot` matches on its `visit_id`, which the next booking overwrote).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from api.consent_documents import CONSENT_DOCUMENTS
from api.consents import consent_required
from api.errors import Problem
from api.services.booking_blocks import blocked_problem, enforce_no_show_rule
from api.services.temporal_calls import workflow_call
from core.settings import Settings
from models.tables import Slot
from models.visit import VisitInput, VisitState
from workflows.visit import VisitWorkflow, booked_state, visit_workflow_id

# The hold outlives the payment window a little, so the Visit flow always releases or confirms it first.
HOLD_GRACE = timedelta(minutes=2)
NEXT_FREE_LIMIT = 5

# `gate` is the slot with the patient's standing, read in the statement's snapshot; `held` is the attempt, whose
# UPDATE re-checks the slot's own columns on the newest row version after waiting for a concurrent winner's lock, so
# exactly one attempt takes an open slot. A slot of a cancelled session (停诊) counts as closed even before the
# schedule flow has closed its slots. Only a refused attempt reads the doctor's next free slots (a CASE branch not
# taken leaves its subquery unevaluated); they are as of the snapshot, so a slot taken in the same instant may still
# be offered, and trying it answers with a fresher list.
_ATTEMPT = """
    WITH gate AS (
        SELECT s.id, s.status, s.doctor_id, s.disease_code, s.fee_fen, s.starts_at, s.ends_at, s.reserved_for,
               s.patient_id AS holder, s.visit_id AS holder_visit, s.held_until > now() AS hold_live,
               s.starts_at > now() AS upcoming,
               coalesce(sc.status = 'cancelled', false) AS session_cancelled,
               EXISTS (SELECT 1 FROM patients p WHERE p.id = $2 AND p.verified_at IS NOT NULL) AS verified,
               ARRAY(SELECT d.document FROM unnest($8::text[], $9::text[]) AS d(document, version)
                      WHERE NOT EXISTS (SELECT 1 FROM consents c
                                         WHERE c.patient_id = $2 AND c.document = d.document
                                           AND c.version = d.version)) AS missing_consents,
               EXISTS (SELECT 1 FROM revisit_eligibility e
                        WHERE e.patient_id = $2 AND e.disease_code = s.disease_code
                          AND e.status = 'eligible' AND e.valid_until > now()) AS eligible,
               (SELECT max(b.blocked_until) FROM booking_blocks b
                 WHERE b.patient_id = $2 AND b.lifted_at IS NULL AND b.blocked_until > now()) AS blocked_until,
               (SELECT count(*) FROM no_shows n
                 WHERE n.patient_id = $2
                   AND n.recorded_at > now() - make_interval(days => $5::int)
                   AND n.recorded_at > coalesce(
                       (SELECT max(coalesce(b.lifted_at, b.blocked_from)) FROM booking_blocks b
                         WHERE b.patient_id = $2),
                       '-infinity')) AS no_shows
          FROM slots s LEFT JOIN schedules sc ON sc.id = s.schedule_id
         WHERE s.id = $1
    ), held AS (
        UPDATE slots s
           SET status = 'held', visit_id = $3, patient_id = $2, held_until = $4
          FROM gate g
         WHERE s.id = g.id
           AND cardinality(g.missing_consents) = 0 AND g.verified AND g.eligible AND g.blocked_until IS NULL AND g.no_shows < $6
           AND NOT g.session_cancelled
           AND s.starts_at > now()
           AND (s.reserved_for IS NULL OR s.reserved_for = $2)
           AND (s.status = 'open' OR (s.status = 'held' AND s.held_until < now()))
        RETURNING s.id
    ), free AS (
        SELECT f.id, f.starts_at
          FROM slots f JOIN gate g ON f.doctor_id = g.doctor_id AND f.id <> g.id
         WHERE f.starts_at > now()
           AND (f.status = 'open' OR (f.status = 'held' AND f.held_until < now()))
           AND (f.reserved_for IS NULL OR f.reserved_for = $2)
           AND NOT EXISTS (SELECT 1 FROM schedules sc WHERE sc.id = f.schedule_id AND sc.status = 'cancelled')
         ORDER BY f.starts_at
         LIMIT $7
    )
    SELECT g.*, w.won,
           CASE WHEN NOT w.won THEN ARRAY(SELECT id FROM free ORDER BY starts_at) END AS free_ids,
           CASE WHEN NOT w.won THEN ARRAY(SELECT starts_at FROM free ORDER BY starts_at) END AS free_starts
      FROM gate g CROSS JOIN (SELECT EXISTS (SELECT 1 FROM held) AS won) w
    """


@dataclass
class Held:
    slot: Slot
    visit_id: str


async def _attempt(pg: asyncpg.Pool, settings: Settings, patient_id: str, slot_id: str, visit_id: str) -> Any | None:
    held_until = datetime.now(UTC) + timedelta(seconds=settings.registration_pay_window_s) + HOLD_GRACE
    documents = list(CONSENT_DOCUMENTS.values())
    return await pg.fetchrow(
        _ATTEMPT,
        slot_id,
        patient_id,
        visit_id,
        held_until,
        settings.no_show_window_days,
        settings.no_show_limit,
        NEXT_FREE_LIMIT,
        [doc.id for doc in documents],
        [doc.version for doc in documents],
    )


def _slot(gate: Any, status: str) -> Slot:
    return Slot(
        id=gate["id"],
        doctor_id=gate["doctor_id"],
        starts_at=gate["starts_at"],
        ends_at=gate["ends_at"],
        fee_fen=gate["fee_fen"],
        disease_code=gate["disease_code"],
        status=status,
    )


def _rule_pending(gate: Any, settings: Settings) -> bool:
    """The statement refused only because the no-show rule calls for a block that is not recorded yet."""
    return bool(gate["verified"]) and gate["blocked_until"] is None and gate["no_shows"] >= settings.no_show_limit


async def hold_slot(
    pg: asyncpg.Pool,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    patient_id: str,
    slot_id: str,
) -> Held:
    """Hold the slot for this patient, or raise the problem that says why not."""
    visit_id = f"{slot_id}-{secrets.token_hex(4)}"
    gate = await _attempt(pg, settings, patient_id, slot_id, visit_id)
    if gate is not None and _rule_pending(gate, settings):
        # Rare: the patient reached the no-show limit since their last booking. Record the block, then decide again
        # (a block whose time already ran out only records history, and the patient may book).
        async with sessions() as session:
            block = await enforce_no_show_rule(session, settings, patient_id)
        if block is not None:
            raise blocked_problem(block.blocked_until)
        gate = await _attempt(pg, settings, patient_id, slot_id, visit_id)
    if gate is None:
        raise Problem(404, "NOT_FOUND", "号源不存在", f"号源 {slot_id} 不存在")
    if gate["won"]:
        return Held(slot=_slot(gate, "held"), visit_id=visit_id)
    _raise_refusal(gate, settings, patient_id)
    if gate["holder"] == patient_id and gate["holder_visit"] is not None:
        if gate["status"] == "booked" or (gate["status"] == "held" and gate["hold_live"]):
            return Held(slot=_slot(gate, gate["status"]), visit_id=gate["holder_visit"])  # a repeat without a key
    raise Problem(
        409,
        "SLOT_TAKEN",
        "号源已被预约",
        "该号源已被其他患者预约，请选择其他号源",
        next_free=_next_free(gate),
    )


def _next_free(gate: Any) -> list[dict[str, str]]:
    return [
        {"slot_id": slot_id, "starts_at": starts_at.isoformat()}
        for slot_id, starts_at in zip(gate["free_ids"], gate["free_starts"], strict=True)
    ]


def _raise_refusal(gate: Any, settings: Settings, patient_id: str) -> None:
    """Every reason to refuse that is about the patient or the slot itself, most actionable first."""
    if gate["missing_consents"]:
        raise consent_required([CONSENT_DOCUMENTS[document] for document in gate["missing_consents"]])
    if not gate["verified"]:
        raise Problem(403, "IDENTITY_NOT_VERIFIED", "未完成实名认证", "请先完成实名认证再预约挂号")
    if gate["blocked_until"] is not None:
        raise blocked_problem(gate["blocked_until"])
    if gate["no_shows"] >= settings.no_show_limit:
        # New no-shows landed between recording a block and the second attempt; the next attempt records them.
        raise Problem(409, "BOOKING_RETRY", "请稍后重试", "您的预约资格正在更新，请稍后重试")
    if gate["status"] == "closed" or gate["session_cancelled"]:
        raise Problem(
            409,
            "SLOT_CLOSED",
            "号源已停诊",
            "该号源所在出诊已停诊或号源已关闭，请选择其他号源",
            next_free=_next_free(gate),
        )
    if not gate["upcoming"]:
        raise Problem(
            409, "SLOT_CLOSED", "号源已过期", "该号源的就诊时间已过，请选择其他号源", next_free=_next_free(gate)
        )
    if gate["reserved_for"] is not None and gate["reserved_for"] != patient_id:
        raise Problem(
            409,
            "SLOT_RESERVED",
            "号源为指定患者保留",
            "该加号由医生为指定患者保留，请选择其他号源",
            next_free=_next_free(gate),
        )
    if not gate["eligible"]:
        raise Problem(
            403,
            "NOT_ELIGIBLE_FOR_REVISIT",
            "不符合在线复诊条件",
            "该号源仅限已通过本病种复诊预判的患者预约，请先进行复诊预判",
            disease_code=gate["disease_code"],
        )


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
    """Start the Visit flow for a hold and answer at once: the hold already decided the booking.

    The flow opens the registration bill right after; `GET /visits/{id}/payment` waits for its payment link. Waiting
    for it here would make every winner of a release-time rush wait for the workers, which are busiest just then.
    A retried start finds the running flow (the id comes from the hold), so nothing is started twice; if the start
    never happens, the hold lapses on its own.
    """
    visit = visit_input(settings, held, patient_id)
    await workflow_call(
        client.start_workflow(
            VisitWorkflow.run,
            visit,
            id=visit_workflow_id(held.visit_id),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=settings.task_queue,
        )
    )
    return booked_state(visit)

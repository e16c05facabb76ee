"""Booking a slot: PostgreSQL decides who gets it in one statement, then the Visit flow starts for the winner.

At a famous doctor's release time thousands of patients press "book" in the same second, so the attempt is one
round trip: a single statement reads the patient's standing (real-name verification, revisit eligibility for the
slot's disease, booking block, no-shows since the last block) and the hospital's (no institution registration
suspended, 8.5.4.2; the slot's department enabled and within the registered 诊疗科目) and, only if all of it allows,
takes the slot with a conditional UPDATE. Row locking in that UPDATE decides the winner; everyone else learns why not
from the same answer, which for a refused attempt also lists the doctor's next free slots.

A hold carries its own expiry, so a request or worker that dies after the hold never keeps the slot: once
`held_until` passes the slot counts as open again, and the lapsed Visit flow can no longer confirm it
(`confirm_slot` matches on its `visit_id`, which the next booking overwrote).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog
from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from api.auth import LIVE_CALLER, Actor, actor_of, check_role, full_scope, idle_limits, signed_in
from api.consent_documents import CONSENT_DOCUMENTS
from api.consents import consent_required
from api.context import AppContext
from api.errors import Problem
from api.idempotency import CLAIM_CONFLICT, CLAIM_INSERT, answer_claim, check_key, idempotent, request_hash
from api.schemas.money import InsuranceIn
from api.services.audit import audit
from api.services.booking_blocks import blocked_problem, enforce_no_show_rule
from api.services.refunds import present_insurance
from api.services.temporal_calls import workflow_call
from core.passwords import token_digest
from core.settings import Settings
from models.common import Role
from models.tables import Slot
from models.visit import VisitInput, VisitState
from workflows.visit import VisitWorkflow, booked_state, registration_bill_id, visit_workflow_id

log = structlog.get_logger()

# The hold outlives the payment window a little, so the Visit flow always releases or confirms it first.
HOLD_GRACE = timedelta(minutes=2)
NEXT_FREE_LIMIT = 5

# `gate` is the slot with the standing of the patient in `caller` (a CTE the statement defines first; no row there,
# no attempt), read in the statement's snapshot; `held` is the attempt, whose UPDATE re-checks the slot's own columns
# on the newest row version after waiting for a concurrent winner's lock, so exactly one attempt takes an open slot.
# A slot of a cancelled session (停诊) counts as closed even before the schedule flow has closed its slots. Only a
# refused attempt reads the doctor's next free slots (a CASE branch not taken leaves its subquery unevaluated); they
# are as of the snapshot, so a slot taken in the same instant may still be offered, and trying it answers with a
# fresher list. The UPDATE finds its row by `{slot}` itself, never through `gate`: joined, the planner may scan the
# whole table. Placeholders name the statement's parameters.
_ATTEMPT_CTES = """
    gate AS (
        SELECT s.id, s.status, s.doctor_id, s.disease_code, s.fee_fen, s.starts_at, s.ends_at, s.reserved_for,
               c.patient_id AS patient,
               s.patient_id AS holder, s.visit_id AS holder_visit, s.held_until > now() AS hold_live,
               s.starts_at > now() AS upcoming,
               coalesce(sc.status = 'cancelled', false) AS session_cancelled,
               EXISTS (SELECT 1 FROM institutions i WHERE i.status = 'suspended') AS suspended,
               EXISTS (SELECT 1 FROM doctors d JOIN departments dp ON dp.id = d.department_id
                        WHERE d.id = s.doctor_id AND dp.active
                          AND dp.subject_code = ANY({subjects}::text[])) AS department_offered,
               EXISTS (SELECT 1 FROM patients p WHERE p.id = c.patient_id AND p.verified_at IS NOT NULL) AS verified,
               ARRAY(SELECT d.document FROM unnest({documents}::text[], {versions}::text[]) AS d(document, version)
                      WHERE NOT EXISTS (SELECT 1 FROM consents k
                                         WHERE k.patient_id = c.patient_id AND k.document = d.document
                                           AND k.version = d.version)) AS missing_consents,
               EXISTS (SELECT 1 FROM revisit_eligibility e
                        WHERE e.patient_id = c.patient_id AND e.disease_code = s.disease_code
                          AND e.status = 'eligible' AND e.valid_until > now()) AS eligible,
               (SELECT max(b.blocked_until) FROM booking_blocks b
                 WHERE b.patient_id = c.patient_id AND b.lifted_at IS NULL AND b.blocked_until > now()) AS blocked_until,
               (SELECT count(*) FROM no_shows n
                 WHERE n.patient_id = c.patient_id
                   AND n.recorded_at > now() - make_interval(days => {no_show_days}::int)
                   AND n.recorded_at > coalesce(
                       (SELECT max(coalesce(b.lifted_at, b.blocked_from)) FROM booking_blocks b
                         WHERE b.patient_id = c.patient_id),
                       '-infinity')) AS no_shows
          FROM caller c CROSS JOIN slots s LEFT JOIN schedules sc ON sc.id = s.schedule_id
         WHERE s.id = {slot}
    ), held AS (
        UPDATE slots s
           SET status = 'held', visit_id = {visit}, patient_id = g.patient, held_until = {held_until}
          FROM gate g
         WHERE s.id = {slot}
           AND cardinality(g.missing_consents) = 0 AND g.verified AND g.eligible AND g.blocked_until IS NULL
           AND g.no_shows < {no_show_limit} AND NOT g.session_cancelled AND NOT g.suspended AND g.department_offered
           AND s.starts_at > now()
           AND (s.reserved_for IS NULL OR s.reserved_for = g.patient)
           AND (s.status = 'open' OR (s.status = 'held' AND s.held_until < now()))
        RETURNING s.id
    ), free AS (
        SELECT u.id, u.starts_at FROM gate g CROSS JOIN LATERAL (
            (SELECT f.id, f.starts_at FROM slots f
              WHERE f.doctor_id = g.doctor_id AND f.status = 'open' AND f.starts_at > now() AND f.id <> g.id
                AND (f.reserved_for IS NULL OR f.reserved_for = g.patient)
                AND (SELECT sc.status FROM schedules sc WHERE sc.id = f.schedule_id) IS DISTINCT FROM 'cancelled'
              ORDER BY f.starts_at LIMIT {free_limit})
            UNION ALL
            (SELECT f.id, f.starts_at FROM slots f
              WHERE f.doctor_id = g.doctor_id AND f.status = 'held' AND f.held_until < now()
                AND f.starts_at > now() AND f.id <> g.id
                AND (f.reserved_for IS NULL OR f.reserved_for = g.patient)
                AND (SELECT sc.status FROM schedules sc WHERE sc.id = f.schedule_id) IS DISTINCT FROM 'cancelled'
              ORDER BY f.starts_at LIMIT {free_limit})
        ) u
         ORDER BY u.starts_at
         LIMIT {free_limit}
    )"""
_ATTEMPT_RESULT = """
    g.*, EXISTS (SELECT 1 FROM held) AS won,
    CASE WHEN NOT EXISTS (SELECT 1 FROM held) THEN ARRAY(SELECT id FROM free ORDER BY starts_at) END AS free_ids,
    CASE WHEN NOT EXISTS (SELECT 1 FROM held) THEN ARRAY(SELECT starts_at FROM free ORDER BY starts_at) END AS free_starts
"""

# `_ATTEMPT_CTES`' parameters, in the order the statements take them (`_attempt_args`).
_ATTEMPT_PARAMS = (
    "slot",
    "visit",
    "held_until",
    "no_show_days",
    "no_show_limit",
    "free_limit",
    "documents",
    "versions",
    "subjects",
)


def _attempt_ctes(first: int) -> str:
    """`_ATTEMPT_CTES` with its parameters numbered from `first`."""
    return _ATTEMPT_CTES.format(**{name: f"${first + n}" for n, name in enumerate(_ATTEMPT_PARAMS)})


# An attempt for a patient already known: the parameter after the attempt's.
_PATIENT = f"${len(_ATTEMPT_PARAMS) + 1}"
_ATTEMPT = (
    f"WITH caller AS (SELECT {_PATIENT}::text AS patient_id), {_attempt_ctes(1)} SELECT {_ATTEMPT_RESULT} FROM gate g"
)

# The whole of a booking request in one round trip: who is asking (the token, $1–$3 as in `LIVE_CALLER`), the claim
# of its Idempotency-Key (`_KEY`, NULL without one; `_HASH` the request's hash) and, only for a patient whose claim
# succeeded, the attempt (its parameters from $4). The caller's columns come back prefixed `caller_`; `claimed` says
# whether this request owns the key.
#
# Its commit does not wait for the WAL to reach the disk (`synchronous_commit` off for this statement's transaction
# only): waiting was a third of PostgreSQL's work per attempt at a rush, and nobody is answered on the strength of it.
# A winner waits for `_DURABLE` before its Visit flow starts, which makes everything written before it durable too,
# this hold and this claim included; a crash before that loses only an attempt nobody was told about, as a crash of
# the request would. A refusal took nothing, so neither it nor its stored answer waits: lost in a crash, the same
# request is decided again when the app retries it.
_KEY, _HASH = f"${4 + len(_ATTEMPT_PARAMS)}", f"${5 + len(_ATTEMPT_PARAMS)}"
_BOOK = (
    "WITH quick AS (SELECT set_config('synchronous_commit', 'off', true)), "
    f"{LIVE_CALLER}, patient AS ("
    "    SELECT l.id AS user_id, l.patient_id FROM live l WHERE l.role = 'patient' AND l.patient_id IS NOT NULL"
    f"), claim AS ({CLAIM_INSERT} SELECT p.user_id, {_KEY}::text, {_HASH}::text, 0, '{{}}'::jsonb, now() FROM patient p"
    f"    WHERE {_KEY}::text IS NOT NULL {CLAIM_CONFLICT}"
    f"), caller AS (SELECT p.patient_id FROM patient p WHERE {_KEY}::text IS NULL OR EXISTS (SELECT 1 FROM claim)), "
    + _attempt_ctes(4)
    + " SELECT l.id AS caller_id, l.role AS caller_role, l.display_name AS caller_display_name,"
    " l.auth_time AS caller_auth_time, l.scope AS caller_scope, l.mfa_method AS caller_mfa_method,"
    " l.patient_id AS caller_patient_id, l.doctor_id AS caller_doctor_id, l.pharmacist_id AS caller_pharmacist_id,"
    f" EXISTS (SELECT 1 FROM claim) AS claimed, {_ATTEMPT_RESULT}"
    " FROM quick CROSS JOIN live l LEFT JOIN gate g ON true"
)
# A commit that waits for the WAL to reach the disk: everything committed before it is durable once it returns.
_DURABLE = "SELECT pg_current_xact_id()"


async def prepare_connection(connection: asyncpg.Connection, settings: Settings) -> None:
    """Run the booking statement once on a new connection, for a token nobody has (so it reads and writes nothing):
    its generic plan and the types of its answer (the free slots' arrays) are then known to the connection before the
    first patient presses "book". Learning those types cost PostgreSQL 50 ms per connection, in the rush itself."""
    await connection.fetchrow(_BOOK, "", *idle_limits(settings), *_attempt_args(settings, "", ""), None, None)


@dataclass
class Held:
    slot: Slot
    visit_id: str


# The agreements every booking checks, listed once rather than on every attempt.
_DOCUMENT_IDS = [doc.id for doc in CONSENT_DOCUMENTS.values()]
_DOCUMENT_VERSIONS = [doc.version for doc in CONSENT_DOCUMENTS.values()]


def _attempt_args(settings: Settings, slot_id: str, visit_id: str) -> tuple[Any, ...]:
    """The values of `_ATTEMPT_PARAMS`: the slot, the hold (visit and expiry), the no-show rule, how many free slots a
    loser is offered, the agreements (ids, versions) a patient must have accepted, and the registered 诊疗科目 a
    department must practise under to be offered."""
    return (
        slot_id,
        visit_id,
        datetime.now(UTC) + timedelta(seconds=settings.registration_pay_window_s) + HOLD_GRACE,
        settings.no_show_window_days,
        settings.no_show_limit,
        NEXT_FREE_LIMIT,
        _DOCUMENT_IDS,
        _DOCUMENT_VERSIONS,
        list(settings.registered_subjects),
    )


def _new_visit_id(slot_id: str) -> str:
    return f"{slot_id}-{secrets.token_hex(4)}"


async def _attempt(pg: asyncpg.Pool, settings: Settings, patient_id: str, slot_id: str, visit_id: str) -> Any | None:
    return await pg.fetchrow(_ATTEMPT, *_attempt_args(settings, slot_id, visit_id), patient_id)


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
    visit_id = _new_visit_id(slot_id)
    gate = await _attempt(pg, settings, patient_id, slot_id, visit_id)
    return await _decided(pg, sessions, settings, patient_id, slot_id, visit_id, gate)


async def _decided(
    pg: asyncpg.Pool,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    patient_id: str,
    slot_id: str,
    visit_id: str,
    gate: Any | None,
) -> Held:
    """The hold an attempt made, or the problem that says why it made none (`gate` without a slot id: no such slot)."""
    if gate is not None and gate["id"] is not None and _rule_pending(gate, settings):
        # Rare: the patient reached the no-show limit since their last booking. Record the block, then decide again
        # (a block whose time already ran out only records history, and the patient may book).
        async with sessions() as session:
            block = await enforce_no_show_rule(session, settings, patient_id)
        if block is not None:
            raise blocked_problem(block.blocked_until)
        gate = await _attempt(pg, settings, patient_id, slot_id, visit_id)
    if gate is None or gate["id"] is None:
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


async def book(
    request: Request,
    ctx: AppContext,
    token: str,
    key: str | None,
    slot_id: str,
    insurance: InsuranceIn | None = None,
) -> JSONResponse:
    """`POST /bookings`: who is asking, the Idempotency-Key's claim and the attempt in one statement (`_BOOK`); then,
    for the winner, the Visit flow starts. At a release-time rush nearly every request is a refusal, and each round
    trip saved is work neither the API nor PostgreSQL does thousands of times a second."""
    if key is not None:
        check_key(key)
    hashed = await request_hash(request) if key is not None else None
    settings = ctx.settings
    visit_id = _new_visit_id(slot_id)
    row = await ctx.pg.fetchrow(
        _BOOK,
        token_digest(token),
        *idle_limits(settings),
        *_attempt_args(settings, slot_id, visit_id),
        key,
        hashed,
    )
    actor = signed_in(request, None if row is None else actor_of(row, settings, prefix="caller_"))
    patient_id = check_role(full_scope(actor), Role.PATIENT).ref or ""

    async def compute() -> tuple[int, dict[str, Any]]:
        held = await _decided(ctx.pg, ctx.sessions, settings, patient_id, slot_id, visit_id, row)
        if row["won"]:
            await ctx.pg.execute(_DURABLE)
        await present_insurance(ctx.sessions, ctx.cipher, patient_id, registration_bill_id(held.visit_id), insurance)
        state = await start_visit(ctx.temporal, settings, held, patient_id)
        return 201, state.model_dump(mode="json")

    return await answer_claim(
        request, actor.user_id, key, hashed, bool(row and row["claimed"]), compute, refusals_may_repeat=True
    )


# Whose slot it is and whether the patient exists, read before an assisted booking attempts anything.
_ASSISTED = """
    SELECT (SELECT doctor_id FROM slots WHERE id = $1) AS doctor_id,
           EXISTS (SELECT 1 FROM patients WHERE id = $2) AS patient_known
"""


async def book_for(
    request: Request, ctx: AppContext, actor: Actor, key: str | None, patient_id: str, slot_id: str
) -> JSONResponse:
    """`POST /patients/{patient_id}/bookings` (8.1.3.4): a doctor books one of their own slots for a patient who
    cannot use the app (often an elderly one), an administrator any slot. The patient's standing is checked exactly as
    when they book themselves (real name, agreements, revisit check, booking block), PostgreSQL decides the slot the
    same way, and the patient gets the payment link. Who booked for whom is in the audit trail."""
    settings = ctx.settings
    found = await ctx.pg.fetchrow(_ASSISTED, slot_id, patient_id)
    if not found["patient_known"]:
        raise Problem(404, "NOT_FOUND", "患者不存在", f"患者 {patient_id} 不存在")
    if found["doctor_id"] is None:
        raise Problem(404, "NOT_FOUND", "号源不存在", f"号源 {slot_id} 不存在")
    if actor.role is Role.DOCTOR and found["doctor_id"] != actor.ref:
        raise Problem(403, "FORBIDDEN", "无权代为预约", "医生只能为患者预约本人出诊的号源")

    async def compute() -> tuple[int, dict[str, Any]]:
        held = await hold_slot(ctx.pg, ctx.sessions, settings, patient_id, slot_id)
        await ctx.pg.execute(_DURABLE)
        async with ctx.sessions() as session:
            detail = {"patient_id": patient_id, "slot_id": slot_id}
            audit(session, actor, "booking.assisted", "visit", held.visit_id, detail=detail, request=request)
            await session.commit()
        state = await start_visit(ctx.temporal, settings, held, patient_id)
        return 201, state.model_dump(mode="json")

    return await idempotent(request, actor, key, compute)


def _next_free(gate: Any) -> list[dict[str, str]]:
    return [
        {"slot_id": slot_id, "starts_at": starts_at.isoformat()}
        for slot_id, starts_at in zip(gate["free_ids"], gate["free_starts"], strict=True)
    ]


def _raise_refusal(gate: Any, settings: Settings, patient_id: str) -> None:
    """Every reason to refuse: first the hospital's own standing (nothing the patient does changes it), then the
    patient and the slot itself, most actionable first."""
    if gate["suspended"]:
        raise Problem(
            409,
            "INSTITUTION_SUSPENDED",
            "互联网诊疗服务暂停",
            "本院互联网医院的执业登记正在向监管平台核实，暂停接受新的预约挂号；已有预约不受影响。如需就医请到医院线下就诊。",
        )
    if not gate["department_offered"]:
        raise Problem(
            409,
            "DEPARTMENT_UNAVAILABLE",
            "科室暂停在线服务",
            "该号源所在科室已停用或不在本院登记的诊疗科目范围内，暂不提供在线复诊，请选择其他科室。",
        )
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
    """Start the Visit flow for a hold and answer as soon as it started, or after `booking_start_wait_ms` at most:
    the hold already decided the booking.

    The flow opens the registration bill right after; `GET /visits/{id}/payment` waits for its payment link. A start
    that outlasts the wait (the Temporal server is busiest at a release-time rush) completes in the background; one
    that never completes (the process stopped) is made from the hold when the patient asks for the payment link
    (`start_from_hold`). A start that fails within the wait fails the request, which the app may retry. A repeated
    start finds the running flow (the id comes from the hold), so nothing is started twice; if no start ever
    happens, the hold lapses on its own.
    """
    visit = visit_input(settings, held, patient_id)
    start = asyncio.ensure_future(_start(client, settings, visit))
    _STARTING.add(start)
    start.add_done_callback(_started)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(start), settings.booking_start_wait_ms / 1000)
    return booked_state(visit)


# Starts still under way after their answer went out, kept referenced until done.
_STARTING: set[asyncio.Future[None]] = set()


async def _start(client: Client, settings: Settings, visit: VisitInput) -> None:
    await workflow_call(
        client.start_workflow(
            VisitWorkflow.run,
            visit,
            id=visit_workflow_id(visit.visit_id),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=settings.task_queue,
        )
    )


def _started(start: asyncio.Future[None]) -> None:
    _STARTING.discard(start)
    if not start.cancelled() and start.exception() is not None:
        log.error("visit_start_failed", error=repr(start.exception()))


async def finish_starts(timeout_s: float) -> None:
    """Wait (at most `timeout_s`) for the starts still under way, so stopping the API loses none of them."""
    if _STARTING:
        await asyncio.wait(list(_STARTING), timeout=timeout_s)


# A live hold whose Visit flow may not exist yet: everything its start needs.
_HOLD = """
    SELECT id, doctor_id, starts_at, ends_at, fee_fen, disease_code, status, patient_id
      FROM slots WHERE visit_id = $1 AND status = 'held' AND held_until > now()
"""


async def start_from_hold(ctx: AppContext, visit_id: str) -> bool:
    """Start the Visit flow of a live hold whose start never completed; False when there is no such hold."""
    hold = await ctx.pg.fetchrow(_HOLD, visit_id)
    if hold is None:
        return False
    held = Held(slot=_slot(hold, "held"), visit_id=visit_id)
    await _start(ctx.temporal, ctx.settings, visit_input(ctx.settings, held, hold["patient_id"]))
    return True

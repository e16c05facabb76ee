"""Throughput of whole patient journeys through the real workflows, against a bare-workflow baseline.

One journey, driven through the Temporal client (no HTTP) with the real activities and the sandbox adapters:
revisit check (Update-with-Start) → hold a slot and book (Update-with-Start of the Visit) → pay the registration
(sandbox channel callback, signalled to the Bill) → accept → medical record → prescribe → finish → sign → pharmacist
review → confirm with home delivery → pay → dispense → courier webhooks (signals) → sign-off with the pickup code →
the Prescription flow completes.

The baseline runs, on the same dev server, a bare workflow with as many sequential no-op activities as one journey
has steps (activities, local activities, updates, signals and child workflows counted from the journeys' histories),
started as often and with the same concurrency. `ratio` = journeys per second / bare workflows per second.

    .venv/bin/python bench/journey.py [--journeys 40] [--concurrency 20] [--warmup 1]

Prints one JSON line to stdout; progress, the per-step breakdown, CPU per process and what the histories say go to
stderr. Each journey books its own slot (any doctor's, with a patient made eligible for that slot's disease), so the
demo hospital's 672 slots and its herb stock (50 kg each: ~470 of these prescriptions) bound --journeys.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.adapters.courier.sandbox import SandboxCourier
from activities.adapters.his.sandbox import SandboxHis
from activities.adapters.payment.sandbox import SandboxPayment
from activities.adapters.registry import Adapters, load_adapters
from api.errors import Problem
from api.services.bookings import hold_slot, start_visit
from bench._stack import CpuMeter, bench_database, configure_logging, log, prepare_database, temporal_server
from bench.bare import BareWorkflow, noop
from core.crypto.sm import FieldCipher
from core.db import make_pool
from core.settings import Settings
from models import idcard
from models.common import Role
from models.fulfilment import CourierStatus, DispenseCheck, FulfilmentStage, FulfilmentState, SignOff
from models.prescription import (
    ConfirmPrescription,
    PickupMethod,
    PrescriptionDraft,
    PrescriptionState,
    ReviewPrescription,
    RxItem,
    RxStage,
    SignPrescription,
    Verdict,
)
from models.record import SignRecord
from models.revisit import RevisitCheckInput, RevisitStatus
from models.tables import Department, Disease, Doctor, Fulfilment, Patient, Prescription, Slot, User, Visit
from models.visit import (
    AcceptVisit,
    BookingRequest,
    FinishVisit,
    Prescribe,
    TcmRecord,
    VisitStage,
    VisitState,
    WriteRecord,
)
from workers.interceptors import LogContextInterceptor
from workers.worker import build_activities, build_workers
from workflows.bill import BillWorkflow, bill_workflow_id
from workflows.fulfilment import FulfilmentWorkflow, fulfilment_workflow_id
from workflows.prescription import PrescriptionWorkflow, prescription_workflow_id
from workflows.revisit import RevisitCheckWorkflow, revisit_workflow_id
from workflows.visit import VisitWorkflow, visit_workflow_id

DEFAULT_JOURNEYS = 40
DEFAULT_CONCURRENCY = 20
HISTORY_SAMPLE = 5
PHARMACIST_ID = "ph-1"
STEP_TIMEOUT_S = 90.0

RECORD = TcmRecord(
    chief_complaint="胃脘胀满反复3月，加重1周",
    present_illness="3月前饮食不节后出现胃脘胀满，食后尤甚，伴纳差乏力。",
    tongue="舌淡胖，苔白腻",
    pulse="脉濡缓",
    tcm_disease="胃痞病",
    tcm_syndrome="脾虚湿阻证",
    treatment_principle="健脾化湿，理气消痞",
    orders="饮食清淡，7剂后复诊。",
)
# 四君子汤: every dose inside its ChP range, so the rule check passes without a second signature.
DRAFT = PrescriptionDraft(
    diagnosis="胃痞病 脾虚湿阻证",
    items=[
        RxItem(herb="党参", dose_g=15),
        RxItem(herb="白术", dose_g=12),
        RxItem(herb="茯苓", dose_g=15),
        RxItem(herb="甘草", dose_g=6),
    ],
    doses=7,
    usage="水煎服，每日一剂，早晚饭后温服",
)
ADDRESS = "北京市东城区东直门内南小街16号"

# History events that are one step of a journey: an activity, a local activity, an update, a signal, a child flow.
STEP_EVENTS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activities",
    EventType.EVENT_TYPE_MARKER_RECORDED: "local_activities",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: "updates",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signals",
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: "child_workflows",
}
LOCAL_ACTIVITY_MARKER = "core_local_activity"


class BenchError(RuntimeError):
    """The benchmark cannot run as set up (too few slots, not the sandbox adapters)."""


class JourneyFailed(RuntimeError):
    def __init__(self, journey: str, step: str, detail: str) -> None:
        super().__init__(f"journey {journey}, step {step!r}: {detail}")


def describe(error: BaseException) -> str:
    """The useful part of a failure: a workflow's refusal code and message, an RPC status, a problem's detail."""
    if isinstance(error, Problem):
        return f"{error.status} {error.code}: {error.detail or error.title}"
    if isinstance(error, WorkflowUpdateFailedError | WorkflowFailureError):
        cause: BaseException | None = error.cause
        while cause is not None and not isinstance(cause, ApplicationError):
            cause = cause.__cause__
        if isinstance(cause, ApplicationError):
            return f"{type(error).__name__}: {cause.type or 'ApplicationError'}: {cause.message}"
        return f"{type(error).__name__}: {error.cause!r}"
    if isinstance(error, RPCError):
        return f"RPCError {error.status.name}: {error.message}"
    if isinstance(error, FailureError):
        return f"{type(error).__name__}: {error.message}"
    return f"{type(error).__name__}: {error}"


# --- the patients ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Casting:
    """Who one journey is about and which slot it books."""

    name: str
    patient_id: str
    slot_id: str
    doctor_id: str
    disease_code: str


async def free_slots(sessions: async_sessionmaker[AsyncSession], count: int) -> list[tuple[str, str, str]]:
    """(slot id, doctor id, disease code) of `count` open future slots, doc-1 first, then the other doctors."""
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Slot.id, Slot.doctor_id, Slot.disease_code)
                .where(Slot.status == "open", Slot.starts_at > datetime.now(UTC) + timedelta(hours=1))
                .order_by(Slot.doctor_id, Slot.starts_at)
            )
        ).all()
    if len(rows) < count:
        raise BenchError(f"{count} journeys (with warm-up) need {count} open slots; the demo hospital has {len(rows)}")
    return [(row.id, row.doctor_id, row.disease_code) for row in rows[:count]]


async def cast_patients(
    sessions: async_sessionmaker[AsyncSession], cipher: FieldCipher, his: SandboxHis, names: Sequence[str], tag: str
) -> list[Casting]:
    """A verified patient per journey, with an offline diagnosis in the sandbox HIS for the disease of its slot."""
    slots = await free_slots(sessions, len(names))
    now = datetime.now(UTC)
    async with sessions() as session:
        diseases = {
            row.code: (row.name, row.department)
            for row in (
                await session.execute(
                    select(Disease.code, Disease.name, Department.name.label("department")).join(
                        Department, Department.id == Disease.department_id
                    )
                )
            ).all()
        }
        doctors = dict((await session.execute(select(Doctor.id, Doctor.name))).all())
    castings: list[Casting] = []
    users: list[User] = []
    patients: list[Patient] = []
    diagnoses: list[dict[str, Any]] = []
    for number, (name, (slot_id, doctor_id, disease_code)) in enumerate(zip(names, slots, strict=True)):
        patient_id = f"bp-{tag}-{number:04d}"
        # Distinct, well-formed GB 11643 numbers: one birthday per patient, adults in their thirties to fifties.
        id_card = idcard.make(region="110101", born=date(1970, 1, 1) + timedelta(days=number), sequence=number % 1000)
        phone = f"138{number:08d}"
        users.append(
            User(
                id=f"u-{patient_id}",
                username=patient_id,
                password_hash="!bench-no-login",
                role=Role.PATIENT,
                display_name=f"压测患者{number}",
            )
        )
        patients.append(
            Patient(
                id=patient_id,
                user_id=f"u-{patient_id}",
                name_enc=cipher.encrypt("name", f"压测{number}"),
                id_card_enc=cipher.encrypt("id_card", id_card),
                id_card_index=cipher.blind_index("id_card", id_card),
                phone_enc=cipher.encrypt("phone", phone),
                phone_index=cipher.blind_index("phone", phone),
                sex="male" if int(id_card[16]) % 2 else "female",
                birth_date=date(int(id_card[6:10]), int(id_card[10:12]), int(id_card[12:14])),
                verified_at=now,
            )
        )
        disease_name, department = diseases[disease_code]
        diagnoses.append(
            {
                "id_card_no": id_card,
                "disease_code": disease_code,
                "disease_name": disease_name,
                "diagnosed_at": now - timedelta(days=30),
                "department": department,
                "doctor_name": doctors.get(doctor_id, "王医生"),
                "encounter_id": f"bench-enc-{tag}-{number:04d}",
            }
        )
        castings.append(Casting(name, patient_id, slot_id, doctor_id, disease_code))
    async with sessions() as session, session.begin():
        session.add_all(users)
        await session.flush()
        session.add_all(patients)
    for diagnosis in diagnoses:
        await his.add_diagnosis(**diagnosis)
    return castings


# --- one journey -----------------------------------------------------------------------------------------------------


@dataclass
class Bench:
    client: Client
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    pg: asyncpg.Pool
    cipher: FieldCipher
    payment: SandboxPayment
    courier: SandboxCourier


@dataclass
class Journey:
    bench: Bench
    cast: Casting
    timings: dict[str, float] = field(default_factory=dict)
    polls: int = 0
    waiting: str | None = None
    workflow_ids: list[str] = field(default_factory=list)

    @property
    def client(self) -> Client:
        return self.bench.client

    @asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        started = time.perf_counter()
        self.waiting = None
        try:
            async with asyncio.timeout(STEP_TIMEOUT_S):
                yield
        except JourneyFailed:
            raise
        except TimeoutError as error:
            detail = f"no answer within {STEP_TIMEOUT_S:.0f} s" + (f" ({self.waiting})" if self.waiting else "")
            raise JourneyFailed(self.cast.name, name, detail) from error
        except Exception as error:
            raise JourneyFailed(self.cast.name, name, describe(error)) from error
        finally:
            self.timings[name] = time.perf_counter() - started

    async def until(self, what: str, statement: Select[Any], done: Callable[[Any], bool]) -> Any:
        """Poll the read model (the rows the flows' local activities write, as the apps list them) until `done`.

        Rows rather than workflow queries: a row is written once the flow's main coroutine has acted on a change, while
        a query shows what a signal handler set at once. (Fulfilment: a sign-off sent as soon as a query says
        "delivered", while the run still awaits the "shipped" notice, leaves `_await_delivery` waiting for a DELIVERED
        stage that is already SIGNED.) Row polls are also cheaper: no workflow task per poll."""
        delay = 0.02
        while True:
            async with self.bench.sessions() as session:
                row = (await session.execute(statement)).first()
            if row is not None and done(row):
                return row
            self.waiting = f"waiting for {what}; last row {row}"
            self.polls += 1
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    async def pay(self, bill_id: str) -> None:
        """The patient pays at the sandbox cashier; its signed callback is verified and signalled, as the API does."""
        headers, body = await self.bench.payment.simulate_payment(bill_id)
        notice = self.bench.payment.parse_payment_notice(headers, body)
        await self.client.get_workflow_handle(bill_workflow_id(notice.out_trade_no)).signal(
            BillWorkflow.payment_notice, notice
        )

    async def run(self) -> None:
        cast, client, settings = self.cast, self.client, self.bench.settings

        async with self.step("revisit_check"):
            check = RevisitCheckInput(
                patient_id=cast.patient_id,
                disease_code=cast.disease_code,
                window_days=settings.revisit_window_days,
                valid_days=settings.revisit_eligibility_days,
            )
            revisit_id = revisit_workflow_id(cast.patient_id, cast.disease_code)
            decision = await client.execute_update_with_start_workflow(
                RevisitCheckWorkflow.decision,
                start_workflow_operation=WithStartWorkflowOperation(
                    RevisitCheckWorkflow.run,
                    check,
                    id=revisit_id,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    task_queue=settings.task_queue,
                ),
            )
            self.workflow_ids.append(revisit_id)
            if decision.status is not RevisitStatus.ELIGIBLE:
                raise RuntimeError(f"revisit check says {decision.status.value}: {decision.reason}")

        async with self.step("hold_slot"):
            held = await hold_slot(self.bench.pg, self.bench.sessions, settings, cast.patient_id, cast.slot_id)

        async with self.step("book"):
            await start_visit(client, settings, held, cast.patient_id)
            visit = client.get_workflow_handle(visit_workflow_id(held.visit_id), result_type=VisitState)
            # What `GET /visits/{id}/payment` waits for: the open bill.
            booked = await visit.execute_update(VisitWorkflow.book, BookingRequest(patient_id=cast.patient_id))
            if booked.bill_id is None or booked.pay_url is None:
                raise RuntimeError(f"booking answered without a bill: {booked!r}")
            self.workflow_ids += [visit.id, bill_workflow_id(booked.bill_id)]

        async with self.step("pay_registration"):
            await self.pay(booked.bill_id)

        async with self.step("wait_waiting_doctor"):
            await self.until(
                "visit waiting for the doctor",
                select(Visit.stage).where(Visit.id == held.visit_id),
                lambda row: _stage(row.stage, VisitStage.WAITING_DOCTOR, (VisitStage.CANCELLED, VisitStage.ABORTED)),
            )

        async with self.step("accept"):
            await visit.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id=cast.doctor_id))

        async with self.step("write_record"):
            await visit.execute_update(VisitWorkflow.write_record, WriteRecord(doctor_id=cast.doctor_id, record=RECORD))

        async with self.step("prescribe"):
            rx_id = await visit.execute_update(
                VisitWorkflow.prescribe,
                Prescribe(doctor_id=cast.doctor_id, prescription_id=f"{held.visit_id}-rx1", draft=DRAFT),
            )
            rx = client.get_workflow_handle(prescription_workflow_id(rx_id), result_type=PrescriptionState)
            self.workflow_ids.append(rx.id)

        async with self.step("sign_record"):
            await visit.execute_update(VisitWorkflow.sign_record, SignRecord(doctor_id=cast.doctor_id))

        async with self.step("finish"):
            finished = await visit.execute_update(VisitWorkflow.finish, FinishVisit(doctor_id=cast.doctor_id))
            if finished.stage is not VisitStage.FINISHED:
                raise RuntimeError(f"visit ended as {finished.stage.value}")

        async with self.step("wait_rx_checked"):
            checked = await self.until(
                "rule check result",
                select(Prescription.verdict, Prescription.findings).where(Prescription.id == rx_id),
                lambda row: row.verdict is not None,
            )
            verdict = Verdict(checked.verdict)
            if verdict is Verdict.BLOCK:
                findings = "; ".join(f"{f['code']}: {f['message']}" for f in checked.findings)
                raise RuntimeError(f"the rule check blocks the prescription: {findings}")

        async with self.step("sign"):
            reason = "剂量经辨证调整" if verdict is Verdict.SIGN_AGAIN else None
            await rx.execute_update(
                PrescriptionWorkflow.sign, SignPrescription(doctor_id=cast.doctor_id, reason=reason)
            )

        async with self.step("review"):
            reviewed = await rx.execute_update(
                PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id=PHARMACIST_ID, approve=True)
            )
            if reviewed.stage is not RxStage.AWAITING_CONFIRMATION:
                raise RuntimeError(f"after approval the prescription is {reviewed.stage.value}")

        async with self.step("confirm"):
            confirmed = await rx.execute_update(
                PrescriptionWorkflow.confirm,
                ConfirmPrescription(
                    patient_id=cast.patient_id,
                    pickup=PickupMethod.DELIVERY,
                    address=ADDRESS,
                    recipient=f"压测{cast.name}",
                    phone="13800138000",
                ),
            )
            if confirmed.bill_id is None or confirmed.pay_url is None:
                raise RuntimeError(f"confirmation answered without a bill: stage {confirmed.stage.value}")
            self.workflow_ids.append(bill_workflow_id(confirmed.bill_id))

        async with self.step("pay_prescription"):
            await self.pay(confirmed.bill_id)

        fulfil = client.get_workflow_handle(fulfilment_workflow_id(rx_id), result_type=FulfilmentState)
        self.workflow_ids.append(fulfil.id)
        fulfilment_row = select(
            Fulfilment.stage, Fulfilment.pharmacy_order_no, Fulfilment.waybill_no, Fulfilment.pickup_code_enc
        ).where(Fulfilment.prescription_id == rx_id)
        async with self.step("wait_pharmacy_order"):
            await self.until(
                "pharmacy order",
                fulfilment_row,
                lambda row: row.pharmacy_order_no is not None or _failed(row),
            )

        async with self.step("dispense"):
            dispensed = await fulfil.execute_update(
                FulfilmentWorkflow.dispense, DispenseCheck(pharmacist_id=PHARMACIST_ID, approve=True)
            )
            if dispensed.stage is FulfilmentStage.FAILED:
                raise RuntimeError(f"fulfilment failed: {dispensed.failure_reason}")

        async with self.step("wait_shipped"):
            shipped = await self.until(
                "waybill", fulfilment_row, lambda row: row.waybill_no is not None or _failed(row)
            )

        async with self.step("courier_events"):
            for status in (CourierStatus.PICKED_UP, CourierStatus.IN_TRANSIT, CourierStatus.DELIVERED):
                headers, body = await self.bench.courier.advance(shipped.waybill_no, status)
                event = self.bench.courier.parse_webhook(headers, body)
                await fulfil.signal(FulfilmentWorkflow.courier_event, event)

        async with self.step("wait_delivered"):
            # The row says delivered only once the flow has left its delivery wait; a query would say so as soon as
            # the signal is handled, and a sign-off sent in between leaves the flow waiting for delivery forever.
            await self.until(
                "delivery", fulfilment_row, lambda row: row.stage == FulfilmentStage.DELIVERED.value or _failed(row)
            )

        async with self.step("sign_off"):
            # The code the patient was sent, as the app shows it: from the fulfilment row, decrypted.
            sealed = (await self.until("pickup code", fulfilment_row, lambda row: True)).pickup_code_enc
            code = self.bench.cipher.decrypt("pickup_code", sealed)
            if not code:
                raise RuntimeError("no pickup code was issued")
            signed = await fulfil.execute_update(
                FulfilmentWorkflow.sign_off, SignOff(actor_id=cast.patient_id, pickup_code=code)
            )
            if not signed.accepted:
                raise RuntimeError("the right pickup code was refused")

        async with self.step("completed"):
            final = await rx.result()
            if final.stage is not RxStage.COMPLETED:
                raise RuntimeError(f"the prescription ended as {final.stage.value}: {final.void_reason}")
            ended = await visit.result()
            if ended.stage is not VisitStage.FINISHED:
                raise RuntimeError(f"the visit ended as {ended.stage.value}")


def _stage(stage: str, wanted: VisitStage, dead_ends: Iterable[VisitStage]) -> bool:
    if stage in {end.value for end in dead_ends}:
        raise RuntimeError(f"the flow went to {stage} instead of {wanted.value}")
    return stage == wanted.value


def _failed(row: Any) -> bool:
    if row.stage == FulfilmentStage.FAILED.value:
        raise RuntimeError("fulfilment failed (see the fulfilment flow for the reason)")
    return False


# --- running many ----------------------------------------------------------------------------------------------------


async def run_all(jobs: Sequence[Callable[[], Awaitable[None]]], concurrency: int) -> float:
    """Run the jobs with at most `concurrency` at a time; seconds from the first start to the last completion.

    The first failure cancels the rest and is raised on its own (not inside an ExceptionGroup)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await job()

    started = time.perf_counter()
    try:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(one(job))
    except BaseExceptionGroup as failures:
        raise _first(failures) from None
    return time.perf_counter() - started


def _first(group: BaseExceptionGroup) -> BaseException:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        journey = [e for e in error.exceptions if isinstance(e, JourneyFailed)]
        error = journey[0] if journey else error.exceptions[0]
    return error


# --- what the histories say ------------------------------------------------------------------------------------------


@dataclass
class HistoryStats:
    events: int = 0
    steps: Counter[str] = field(default_factory=Counter)
    workflow_tasks: int = 0
    wft_queue_s: list[float] = field(default_factory=list)  # workflow task scheduled → started
    wft_run_s: list[float] = field(default_factory=list)  # workflow task started → completed
    activity_queue_s: list[float] = field(default_factory=list)  # activity scheduled → started
    activity_run_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # started → completed

    @property
    def step_count(self) -> int:
        return sum(self.steps.values())


def _seconds(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


def add_history(stats: HistoryStats, events: Sequence[HistoryEvent]) -> None:
    stats.events += len(events)
    by_id = {event.event_id: event for event in events}
    activity_types: dict[int, str] = {}
    for event in events:
        kind = STEP_EVENTS.get(event.event_type)
        if kind == "local_activities" and event.marker_recorded_event_attributes.marker_name != LOCAL_ACTIVITY_MARKER:
            kind = None
        if kind is not None:
            stats.steps[kind] += 1
        match event.event_type:
            case EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                scheduled = by_id.get(event.workflow_task_started_event_attributes.scheduled_event_id)
                if scheduled is not None:
                    stats.wft_queue_s.append(_seconds(event) - _seconds(scheduled))
            case EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                stats.workflow_tasks += 1
                started = by_id.get(event.workflow_task_completed_event_attributes.started_event_id)
                if started is not None:
                    stats.wft_run_s.append(_seconds(event) - _seconds(started))
            case EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                activity_types[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
            case EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                scheduled = by_id.get(event.activity_task_started_event_attributes.scheduled_event_id)
                if scheduled is not None:
                    stats.activity_queue_s.append(_seconds(event) - _seconds(scheduled))
            case EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                attributes = event.activity_task_completed_event_attributes
                started = by_id.get(attributes.started_event_id)
                name = activity_types.get(attributes.scheduled_event_id, "?")
                if started is not None:
                    stats.activity_run_s[name].append(_seconds(event) - _seconds(started))


async def history_stats(client: Client, workflow_ids: Iterable[str]) -> HistoryStats:
    stats = HistoryStats()
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        add_history(stats, history.events)
    return stats


def _ms(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"mean {statistics.fmean(values) * 1000:.1f} ms, p90 {_quantile(values, 0.9) * 1000:.1f} ms"


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report_history(label: str, stats: HistoryStats, runs: int) -> None:
    log.info(
        "%s histories (per run, %d runs): %.1f events, %.1f workflow tasks, steps %s",
        label,
        runs,
        stats.events / runs,
        stats.workflow_tasks / runs,
        {kind: round(count / runs, 1) for kind, count in sorted(stats.steps.items())},
    )
    log.info("  workflow task queue (scheduled→started): %s", _ms(stats.wft_queue_s))
    log.info("  workflow task run (started→completed):   %s", _ms(stats.wft_run_s))
    log.info("  activity queue (scheduled→started):      %s", _ms(stats.activity_queue_s))
    for name, values in sorted(stats.activity_run_s.items(), key=lambda item: -sum(item[1])):
        log.info("  activity %-24s run: %s (%d)", name, _ms(values), len(values))


def report_cpu(label: str, meter: CpuMeter, seconds: float, runs: int) -> None:
    python, server = meter.used()
    log.info(
        "%s CPU: this process %.0f ms per run (%.2f cores), dev server %.0f ms per run (%.2f cores)",
        label,
        1000 * python / runs,
        python / seconds,
        1000 * server / runs,
        server / seconds,
    )


def report_steps(journeys: Sequence[Journey], seconds: float) -> None:
    """Where a journey's wall time goes, step by step (client view: each includes the waits inside it)."""
    names = list(journeys[0].timings)
    total = statistics.fmean(sum(j.timings.values()) for j in journeys)
    log.info(
        "journey latency: mean %.2f s; %d journeys in %.2f s; %.1f read-model polls per journey",
        total,
        len(journeys),
        seconds,
        statistics.fmean(j.polls for j in journeys),
    )
    for name in sorted(names, key=lambda n: -statistics.fmean(j.timings.get(n, 0.0) for j in journeys)):
        values = [j.timings.get(name, 0.0) for j in journeys]
        mean = statistics.fmean(values)
        log.info(
            "  %-20s mean %7.1f ms  p90 %7.1f ms  %5.1f %%",
            name,
            mean * 1000,
            _quantile(values, 0.9) * 1000,
            100 * mean / total,
        )


# --- the benchmark ---------------------------------------------------------------------------------------------------


@asynccontextmanager
async def running(stack_workers: Sequence[Worker]) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for worker in stack_workers:
            await stack.enter_async_context(worker)
        yield


async def bench(journeys: int, concurrency: int, warmup: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    queue = f"bench-{tag}"
    if hasattr(os, "getloadavg"):
        # Other work on the machine moves the wall-clock numbers; the CPU per run logged below moves much less.
        log.info("load average before the run: %.2f %.2f %.2f", *os.getloadavg())
    database_url = await bench_database()
    settings = Settings(
        database_url=database_url,
        task_queue=queue,
        adapter_his="sandbox",
        adapter_payment="sandbox",
        adapter_pharmacy="sandbox",
        adapter_courier="sandbox",
        adapter_notifier="sandbox",
        adapter_realname="sandbox",
        sandbox_latency_ms=0,
        sandbox_failure_rate=0.0,
    )
    engine, sessions = await prepare_database(settings, pool_size=max(20, concurrency))
    pg = await make_pool(settings, size=max(20, concurrency))
    try:
        adapters: Adapters = load_adapters(sessions, settings)
        if not (isinstance(adapters.payment, SandboxPayment) and isinstance(adapters.courier, SandboxCourier)):
            raise BenchError("the journey benchmark needs the sandbox payment channel and courier")
        if not isinstance(adapters.his, SandboxHis):
            raise BenchError("the journey benchmark needs the sandbox HIS")
        cipher = FieldCipher(settings.pii_key, settings.blind_index_key)

        names = [f"warmup-{n}" for n in range(warmup)] + [str(n) for n in range(journeys)]
        prepared = time.perf_counter()
        castings = await cast_patients(sessions, cipher, adapters.his, names, tag)
        log.info("%d patients with HIS diagnoses in %.2f s", len(castings), time.perf_counter() - prepared)

        async with temporal_server() as client:
            context = Bench(client, settings, sessions, pg, cipher, adapters.payment, adapters.courier)
            workers = build_workers(client, queue, build_activities(sessions, settings, adapters))
            async with running(workers):
                warm = [Journey(context, cast) for cast in castings[:warmup]]
                if warm:
                    await run_all([j.run for j in warm], concurrency)
                    log.info("warm-up: %d journey(s) done", len(warm))
                timed = [Journey(context, cast) for cast in castings[warmup:]]
                log.info("running %d journeys, %d at a time", len(timed), concurrency)
                meter = CpuMeter()
                journey_s = await run_all([j.run for j in timed], concurrency)
                report_cpu("journey", meter, journey_s, len(timed))
                report_steps(timed, journey_s)

            sample = timed[: min(HISTORY_SAMPLE, len(timed))]
            journey_history = await history_stats(client, (wid for j in sample for wid in j.workflow_ids))
            report_history("journey", journey_history, len(sample))
            steps = round(journey_history.step_count / len(sample))

            bare_queue = f"{queue}-bare"
            # Set up like the journey's main worker (same interceptor and activity limit), minus the project's code.
            bare_worker = Worker(
                client,
                task_queue=bare_queue,
                workflows=[BareWorkflow],
                activities=[noop],
                interceptors=[LogContextInterceptor()],
                max_concurrent_activities=50,
            )
            bare_ids: list[str] = []

            async def bare(number: str) -> None:
                workflow_id = f"bare-{tag}-{number}"
                bare_ids.append(workflow_id)
                try:
                    await client.execute_workflow(BareWorkflow.run, steps, id=workflow_id, task_queue=bare_queue)
                except Exception as error:
                    raise JourneyFailed(f"bare-{number}", "bare workflow", describe(error)) from error

            async with running([bare_worker]):
                if warmup:
                    await run_all([lambda n=n: bare(f"warmup-{n}") for n in range(warmup)], concurrency)
                bare_ids.clear()
                log.info("running %d bare workflows of %d activities, %d at a time", journeys, steps, concurrency)
                meter = CpuMeter()
                bare_s = await run_all([lambda n=n: bare(str(n)) for n in range(journeys)], concurrency)
                report_cpu("bare", meter, bare_s, journeys)
            bare_history = await history_stats(client, bare_ids[: len(sample)])
            report_history("bare", bare_history, len(sample))
    finally:
        await pg.close()
        await engine.dispose()

    journeys_per_s = journeys / journey_s
    bare_per_s = journeys / bare_s
    return {
        "bench": "journey",
        "journeys": journeys,
        "seconds": round(journey_s, 3),
        "journeys_per_s": round(journeys_per_s, 3),
        "history_events_per_journey": round(journey_history.events / len(sample), 1),
        "steps_per_journey": steps,
        "baseline_workflows_per_s": round(bare_per_s, 3),
        "ratio": round(journeys_per_s / bare_per_s, 3),
    }


def reserve_stdout() -> TextIO:
    """Keep the real stdout for the JSON line and point fd 1 at stderr, so anything else written there (the dev
    server's banner, a stray print) cannot mix into the result."""
    sys.stdout.flush()
    result = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=DEFAULT_JOURNEYS, help="timed journeys (and bare workflows)")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="journeys in flight at once")
    parser.add_argument("--warmup", type=int, default=1, help="untimed journeys (and bare workflows) run first")
    args = parser.parse_args()
    if args.journeys < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--journeys and --concurrency must be at least 1, --warmup at least 0")
    out = reserve_stdout()
    configure_logging()
    try:
        result = asyncio.run(bench(args.journeys, args.concurrency, args.warmup))
    except (BenchError, JourneyFailed) as failure:
        log.error("benchmark failed: %s", failure)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    print(json.dumps(result, ensure_ascii=False, separators=(",", ":")), file=out, flush=True)


if __name__ == "__main__":
    main()

"""Durability: 20 journeys in flight, the worker process is SIGKILLed mid-way and restarted, all 20 complete, and
every outside effect happened exactly once (one charge per bill, one HIS registration per visit, one pharmacy order
and one courier shipment per prescription, one pickup-code notice per prescription).

The worker is a real OS process (`python -m workers.worker`) on a task queue of its own; the API runs in process and
is driven over HTTP by `workers.journey.Journey`, exactly like the end-to-end journey test.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from activities.adapters.his.sandbox import SandboxHis
from activities.adapters.tsa.sandbox import TimestampIssuer
from core.settings import Settings
from models import idcard
from models.common import Role
from models.tables import (
    Bill,
    Fulfilment,
    Herb,
    Notification,
    Prescription,
    SandboxCall,
    SandboxPayOrder,
    SandboxShipment,
    Slot,
    Visit,
)
from tests.api.helpers import make_user
from tests.e2e.conftest import running_api
from tests.e2e.worker_process import WorkerProcess, restart, wait_ready, worker_env
from workers.journey import PRESCRIPTION, Journey
from workers.seed import DEMO_PASSWORD, DEPARTMENTS, DOCTORS

JOURNEYS = 20
DISEASE = "TCM-PW-001"  # 胃痞病, department dept-pw: doc-1 and doc-2 both see it
DOCTOR_IDS = ("doc-1", "doc-2")
PHARMACISTS = ("demo-pharmacist", "demo-pharmacist2")
# The kill comes once this many registrations are paid; with staggered starts, later journeys have not paid yet.
KILL_AFTER_PAID = 5
START_STAGGER_S = 0.3
RESTART_AFTER_S = 1.5
JOURNEY_WAIT_S = 120.0
KILL_TRIGGER_TIMEOUT_S = 45.0
# All journeys must be done this long after the restart (they take ~30 s; without a worker they hang forever).
COMPLETE_WITHIN_S = 90.0
PAST_PAYMENT = ("waiting_doctor", "in_consult", "finished")
# Ten different characters, so every test patient has a distinct, well-formed Chinese name.
NAME_CHARS = "甲乙丙丁戊己庚辛壬癸"


# --- the cast: 20 patients, each with an offline diagnosis and a slot of their own -------------------------------


@dataclass
class PinnedJourney(Journey):
    """A journey that books the slot it was given, so concurrent journeys never race for the same one."""

    slot_id: str = ""

    async def free_slot(self, doctor_id: str, disease_code: str, skip: int = 0) -> str:
        return self.slot_id

    async def consult(self, visit_id: str) -> str:
        # The visit's stage comes from a workflow query, which shows `waiting_doctor` before the `record_visit` step
        # has written it to the read model behind the doctor's list. Normally that gap is a few milliseconds; after the
        # kill the step is redone by the new worker, so wait for the list instead of checking it once.
        await self.until(
            "出现在医生待接诊列表",
            lambda: self.call("GET", "/visits", self.doctor, params={"stage": "waiting_doctor"}),
            lambda waiting: visit_id in {v["visit_id"] for v in waiting},
        )
        return await super().consult(visit_id)


@dataclass(frozen=True)
class Cast:
    number: int
    username: str
    patient_id: str
    identity: dict[str, str]
    doctor_id: str
    doctor_username: str
    slot_id: str

    def label(self) -> str:
        return f"journey #{self.number} ({self.username}, {self.doctor_id}, {self.slot_id})"


async def open_slots(sessions: async_sessionmaker[AsyncSession], doctor_id: str, count: int) -> list[str]:
    async with sessions() as session:
        slots = (
            (
                await session.execute(
                    select(Slot.id)
                    .where(
                        Slot.doctor_id == doctor_id,
                        Slot.disease_code == DISEASE,
                        Slot.status == "open",
                        Slot.starts_at > datetime.now(UTC) + timedelta(hours=1),
                    )
                    .order_by(Slot.starts_at)
                    .limit(count)
                )
            )
            .scalars()
            .all()
        )
    assert len(slots) == count, f"{doctor_id} has only {len(slots)} open {DISEASE} slots, {count} needed"
    return list(slots)


async def make_cast(sessions: async_sessionmaker[AsyncSession], settings: Settings, uid: str) -> list[Cast]:
    doctors = {doctor.id: doctor for doctor in DOCTORS}
    department = next(d for d in DEPARTMENTS if d.id == doctors[DOCTOR_IDS[0]].department_id)
    disease_name = dict(department.diseases)[DISEASE]
    per_doctor = JOURNEYS // len(DOCTOR_IDS)
    slots = {doctor_id: await open_slots(sessions, doctor_id, per_doctor) for doctor_id in DOCTOR_IDS}
    his = SandboxHis(sessions, settings)
    # A birthday base and a phone block from the run's uid, so the numbers differ from run to run as well.
    seed = int(uid[:6], 16)
    born = date(1955, 1, 1) + timedelta(days=seed % 10_000)
    now = datetime.now(UTC)
    cast: list[Cast] = []
    for number in range(JOURNEYS):
        doctor = doctors[DOCTOR_IDS[number % len(DOCTOR_IDS)]]
        username = f"durable-{uid}-{number:02d}"
        _, patient_id = await make_user(
            sessions, Role.PATIENT, username=username, password=DEMO_PASSWORD, display_name=f"耐久患者{number}"
        )
        assert patient_id is not None
        identity = {
            "name": f"耐久{NAME_CHARS[number // 10]}{NAME_CHARS[number % 10]}",
            "id_card_no": idcard.make(region="110105", born=born + timedelta(days=number), sequence=number),
            "phone": f"137{seed % 10_000:04d}{number:04d}",
        }
        assert idcard.is_valid(identity["id_card_no"])
        await his.add_diagnosis(
            id_card_no=identity["id_card_no"],
            disease_code=DISEASE,
            disease_name=disease_name,
            diagnosed_at=now - timedelta(days=30),
            department=department.name,
            doctor_name=doctor.name,
            encounter_id=f"durable-{uid}-{number:02d}",
        )
        cast.append(
            Cast(
                number=number,
                username=username,
                patient_id=patient_id,
                identity=identity,
                doctor_id=doctor.id,
                doctor_username=doctor.username,
                slot_id=slots[doctor.id][number // len(DOCTOR_IDS)],
            )
        )
    assert len({c.identity["id_card_no"] for c in cast}) == JOURNEYS
    assert len({c.identity["phone"] for c in cast}) == JOURNEYS
    assert len({c.slot_id for c in cast}) == JOURNEYS
    return cast


# --- watching the journeys from the database ---------------------------------------------------------------------


async def visit_stages(sessions: async_sessionmaker[AsyncSession], patient_ids: Sequence[str]) -> Counter[str]:
    """How many of the cast's visits are in each stage; `none` counts patients who have not booked yet."""
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Visit.stage, func.count()).where(Visit.patient_id.in_(patient_ids)).group_by(Visit.stage)
            )
        ).all()
    stages = Counter({stage: count for stage, count in rows})
    stages["none"] = len(patient_ids) - sum(stages.values())
    return stages


async def wait_until_mid_way(sessions: async_sessionmaker[AsyncSession], patient_ids: Sequence[str]) -> Counter[str]:
    """Return the visit stages once at least KILL_AFTER_PAID registrations are paid."""
    deadline = time.monotonic() + KILL_TRIGGER_TIMEOUT_S
    while True:
        stages = await visit_stages(sessions, patient_ids)
        if sum(stages[s] for s in PAST_PAYMENT) >= KILL_AFTER_PAID:
            return stages
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {KILL_AFTER_PAID} registrations paid in time: {dict(stages)}")
        await asyncio.sleep(0.1)


async def run_journey(journey: PinnedJourney, who: Cast) -> None:
    await asyncio.sleep(who.number * START_STAGGER_S)
    await journey.happy_path(who.identity, who.doctor_id, DISEASE)


def last_step(journey: Journey) -> str:
    return journey.timeline[-1].what if journey.timeline else "(no step done)"


def report(
    cast: Sequence[Cast],
    journeys: Sequence[Journey],
    tasks: Sequence[asyncio.Task[None]],
    worker: WorkerProcess,
    when: str,
) -> None:
    """Fail with one line per journey that raised or is still running, naming it and its last completed step."""
    problems = []
    for who, journey, task in zip(cast, journeys, tasks, strict=True):
        if not task.done():
            problems.append(f"{who.label()} still running, stuck after '{last_step(journey)}'")
        elif task.exception() is not None:
            error = task.exception()
            problems.append(f"{who.label()} failed after '{last_step(journey)}': {type(error).__name__}: {error}")
    assert not problems, (
        f"{len(problems)} of {JOURNEYS} journeys did not complete {when}:\n"
        + "\n".join(problems)
        + f"\n--- worker log (tail) ---\n{worker.log_tail()}"
    )


# --- the test ----------------------------------------------------------------------------------------------------


async def test_sigkilled_worker_restarts_and_every_journey_completes_with_effects_once(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    client: Client,
    demo_hospital: None,
    uid: str,
    tmp_path: Path,
) -> None:
    queue = f"durable-{uid}"
    settings = Settings(  # type: ignore[call-arg]
        database_url=database_url, task_queue=queue, tsa_sandbox_key_dir=str(tmp_path / "tsa")
    )
    cast = await make_cast(sessions, settings, uid)
    patient_ids = [c.patient_id for c in cast]
    herbs = {item["herb"]: item["dose_g"] * PRESCRIPTION["doses"] for item in PRESCRIPTION["items"]}
    stock_before = await herb_stock(sessions, herbs)

    TimestampIssuer(key_dir=tmp_path / "tsa")  # made once, before two processes could race to make it
    env = worker_env(database_url, client.service_client.config.target_host, queue, tmp_path / "tsa")
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        worker.start()
        await wait_ready(worker)
        async with running_api(settings, client) as http:
            journeys = [
                PinnedJourney(
                    http,
                    patient=c.username,
                    doctor=c.doctor_username,
                    pharmacist=PHARMACISTS[c.number % len(PHARMACISTS)],
                    wait_s=JOURNEY_WAIT_S,
                    slot_id=c.slot_id,
                )
                for c in cast
            ]
            for journey, c in zip(journeys, cast, strict=True):
                await journey.login(c.username)  # every patient logs in through the API before the rush
            tasks = [asyncio.create_task(run_journey(j, c)) for j, c in zip(journeys, cast, strict=True)]
            everything = asyncio.gather(*tasks, return_exceptions=True)
            trigger = asyncio.create_task(wait_until_mid_way(sessions, patient_ids))
            try:
                await asyncio.wait({trigger, everything}, return_when=asyncio.FIRST_COMPLETED)
                if not trigger.done():
                    # Every journey ended before the kill point, so some failed on a healthy worker.
                    report(cast, journeys, tasks, worker, "before the worker was killed")
                    raise AssertionError("all journeys ended before the kill point")
                at_kill = trigger.result()
                worker.sigkill()
                await restart(worker, RESTART_AFTER_S)
                await asyncio.wait(tasks, timeout=COMPLETE_WITHIN_S)
                report(
                    cast,
                    journeys,
                    tasks,
                    worker,
                    f"within {COMPLETE_WITHIN_S:.0f} s of the restart (killed at visit stages {dict(at_kill)})",
                )
            finally:
                trigger.cancel()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(trigger, everything, return_exceptions=True)
        worker.stop()
    finally:
        worker.sigkill()  # a no-op when it already stopped; never leaves a worker behind on failure

    # The kill really came mid-way: some registrations paid, some journeys not yet past payment.
    assert len(worker.started) == 2
    paid_then = sum(at_kill[s] for s in PAST_PAYMENT)
    assert KILL_AFTER_PAID <= paid_then < JOURNEYS, f"the kill did not come mid-way: {dict(at_kill)}"
    assert at_kill["none"] + at_kill["awaiting_payment"] > 0, f"no journey was before payment at the kill: {at_kill}"

    await assert_effects_once(sessions, cast, journeys, herbs, stock_before)


async def herb_stock(sessions: async_sessionmaker[AsyncSession], herbs: dict[str, float]) -> dict[str, int]:
    async with sessions() as session:
        rows = (await session.execute(select(Herb.name, Herb.stock_g).where(Herb.name.in_(list(herbs))))).all()
    return dict(rows)


async def assert_effects_once(
    sessions: async_sessionmaker[AsyncSession],
    cast: Sequence[Cast],
    journeys: Sequence[Journey],
    herbs: dict[str, float],
    stock_before: dict[str, int],
) -> None:
    patient_ids = [c.patient_id for c in cast]
    async with sessions() as session:
        bills = {
            row.id: row
            for row in (await session.execute(select(Bill).where(Bill.patient_id.in_(patient_ids)))).scalars()
        }
        charges = dict(
            (
                await session.execute(
                    select(SandboxPayOrder.out_trade_no, SandboxPayOrder.charges).where(
                        SandboxPayOrder.out_trade_no.in_(list(bills))
                    )
                )
            ).all()
        )
        visits = {
            row.id: row
            for row in (await session.execute(select(Visit).where(Visit.patient_id.in_(patient_ids)))).scalars()
        }
        prescriptions = {
            row.id: row
            for row in (
                await session.execute(select(Prescription).where(Prescription.patient_id.in_(patient_ids)))
            ).scalars()
        }
        fulfilments = {
            row.prescription_id: row
            for row in (
                await session.execute(select(Fulfilment).where(Fulfilment.patient_id.in_(patient_ids)))
            ).scalars()
        }

        async def calls(system: str, operation: str, key: str) -> Counter[str]:
            rows = (
                await session.execute(
                    select(SandboxCall.request[key].astext).where(
                        SandboxCall.system == system, SandboxCall.operation == operation
                    )
                )
            ).scalars()
            return Counter(rows)

        his_registrations = await calls("his", "register_visit", "visit_id")
        pharmacy_orders = await calls("pharmacy", "submit_order", "prescription_id")
        courier_calls = await calls("courier", "create_shipment", "order_ref")
        shipments = Counter(
            (
                await session.execute(
                    select(SandboxShipment.order_ref).where(SandboxShipment.order_ref.in_(list(prescriptions)))
                )
            ).scalars()
        )
        pickup_notices = Counter(
            key.split(":", 1)[0].removeprefix("fulfil-")
            for key in (
                await session.execute(select(Notification.key).where(Notification.key.like("fulfil-%:pickup-code:%")))
            ).scalars()
        )
    stock_after = await herb_stock(sessions, herbs)

    assert len(bills) == 2 * JOURNEYS, f"{len(bills)} bills for {JOURNEYS} journeys"
    assert len(visits) == JOURNEYS and len(prescriptions) == JOURNEYS
    for who, journey in zip(cast, journeys, strict=True):
        label = who.label()
        visit_id = journey.ids["visit"].removeprefix("visit-")
        rx_id = journey.ids["prescription"].removeprefix("rx-")
        own_bills = [journey.ids["registration_bill"], journey.ids["prescription_bill"]]
        for bill_id in (b.removeprefix("bill-") for b in own_bills):
            assert bill_id in bills, f"{label}: bill {bill_id} missing"
            assert bills[bill_id].status == "paid", f"{label}: bill {bill_id} is {bills[bill_id].status}"
            assert charges.get(bill_id) == 1, f"{label}: bill {bill_id} charged {charges.get(bill_id)} times"
        assert visits[visit_id].stage == "finished", f"{label}: visit {visit_id} is {visits[visit_id].stage}"
        assert visits[visit_id].his_registration_no, f"{label}: visit {visit_id} has no HIS registration"
        assert his_registrations[visit_id] == 1, f"{label}: {his_registrations[visit_id]} HIS registrations"
        assert prescriptions[rx_id].stage == "completed", f"{label}: prescription is {prescriptions[rx_id].stage}"
        assert fulfilments[rx_id].stage == "signed", f"{label}: fulfilment is {fulfilments[rx_id].stage}"
        assert pharmacy_orders[rx_id] == 1, f"{label}: {pharmacy_orders[rx_id]} pharmacy orders"
        assert courier_calls[rx_id] == 1, f"{label}: {courier_calls[rx_id]} courier bookings"
        assert shipments[rx_id] == 1, f"{label}: {shipments[rx_id]} shipments"
        assert pickup_notices[rx_id] == 1, f"{label}: {pickup_notices[rx_id]} pickup-code notices"
    # Stock was taken once per prescription: a replayed pharmacy order would have taken it twice.
    for herb, grams in herbs.items():
        taken = stock_before[herb] - stock_after[herb]
        assert taken == JOURNEYS * grams, f"{herb}: {taken} g taken for {JOURNEYS} prescriptions of {grams} g"

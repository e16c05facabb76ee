"""Durability of a doctor's leave (停诊): six patients booked and paid on one session, the leave is posted, and the
worker process is SIGKILLed while the ScheduleChange flow is fanning out to their visits (some patients have their
leave notice, others not yet). After a restart the leave still reaches every one of them exactly once: one leave
notice each, every visit ends refunded or rebooked with one refund per bill at the payment channel, and the change
ends done, counting every visit. The request that posted the leave is audited.

The worker is a real OS process (`python -m workers.worker`) on a task queue of its own, as in test_durability; the
API runs in process and is driven over HTTP by `workers.journey.Journey`, as in test_schedule_change.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio.client import Client

from activities.adapters.tsa.sandbox import TimestampIssuer
from core.settings import Settings
from models.tables import AuditEvent, Bill, Notification, SandboxCall, SandboxRefund, ScheduleChange, Visit
from tests.e2e.conftest import running_api
from tests.e2e.test_schedule_change import ON_LEAVE, OTHER, Booked, make_session, ready_patient
from tests.e2e.worker_process import WorkerProcess, restart, wait_ready, worker_env
from workers.journey import Journey

PATIENTS = 6
FEE_FEN = 5000
CHEAPER_FEE_FEN = 2000
# Long enough for two patients to choose over HTTP after the restart (a workflow task lost with the killed worker
# is handed out again only after its timeout, ~10 s); the other four are refunded when it passes.
CHOICE_WINDOW_S = 30
RESTART_AFTER_S = 1.5
KILL_TRIGGER_TIMEOUT_S = 30.0
POLL_S = 0.01
# Everything settles within this long of the restart: the window, plus notice steps lost with the killed worker,
# which are retried only after their 30 s start-to-close timeout.
SETTLE_WITHIN_S = 120.0
LEAVE_NOTICE = "visit_leave_offer"


async def notified(sessions: async_sessionmaker[AsyncSession], template: str, user_ids: Sequence[str]) -> Counter[str]:
    """How many notices of `template` each of these users has."""
    async with sessions() as session:
        rows = (
            await session.execute(
                select(col(Notification.user_id)).where(
                    col(Notification.template) == template, col(Notification.user_id).in_(user_ids)
                )
            )
        ).scalars()
        return Counter(rows)


async def until_notified(
    sessions: async_sessionmaker[AsyncSession], template: str, user_ids: Sequence[str]
) -> Counter[str]:
    """The notices of `template` once every one of these users has one. A notice step the killed worker had
    started is retried only after its start-to-close timeout, so it may come after the change is done."""
    deadline = time.monotonic() + SETTLE_WITHIN_S
    while True:
        notices = await notified(sessions, template, user_ids)
        if set(notices) == set(user_ids):
            return notices
        if time.monotonic() > deadline:
            raise AssertionError(f"{template}: only {len(notices)} of {len(user_ids)} patients notified: {notices}")
        await asyncio.sleep(0.1)


async def kill_mid_fan_out(
    sessions: async_sessionmaker[AsyncSession], worker: WorkerProcess, user_ids: Sequence[str]
) -> int:
    """SIGKILL the worker as soon as the first leave notice is written; return how many patients had one then."""
    deadline = time.monotonic() + KILL_TRIGGER_TIMEOUT_S
    while True:
        told = len(await notified(sessions, LEAVE_NOTICE, user_ids))
        if told:
            worker.sigkill()
            return told
        if time.monotonic() > deadline:
            raise AssertionError(f"no leave notice within {KILL_TRIGGER_TIMEOUT_S:.0f} s:\n{worker.log_tail()}")
        await asyncio.sleep(POLL_S)


async def book_and_pay(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, journey: Journey, number: int, slot_id: str
) -> Booked:
    user_id = await ready_patient(sessions, settings, journey, number)
    visit = await journey.book(slot_id)
    await journey.pay(visit["bill_id"], "挂号费")
    await journey.visit_stage(visit["visit_id"], "waiting_doctor", journey.patient)
    return Booked(journey, user_id, visit["visit_id"], visit["bill_id"])


async def offered(patient: Booked) -> None:
    await patient.journey.until(
        "停诊改约/退款选择",
        lambda: patient.journey.call("GET", f"/visits/{patient.visit_id}", patient.journey.patient),
        lambda v: v["leave_offer"] is not None,
    )


async def test_leave_reaches_every_patient_once_across_a_sigkilled_worker(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    client: Client,
    demo_hospital: None,
    uid: str,
    tmp_path: Path,
) -> None:
    queue = f"leave-durable-{uid}"
    settings = Settings(  # type: ignore[call-arg]
        database_url=database_url,
        task_queue=queue,
        tsa_sandbox_key_dir=str(tmp_path / "tsa"),
        leave_choice_window_s=CHOICE_WINDOW_S,
    )
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    schedule_id, slots = await make_session(sessions, ON_LEAVE, tomorrow, slots=PATIENTS, fee_fen=FEE_FEN)
    _, cheaper = await make_session(sessions, OTHER, tomorrow + timedelta(hours=3), slots=1, fee_fen=CHEAPER_FEE_FEN)

    TimestampIssuer(key_dir=tmp_path / "tsa")  # made once, before two processes could race to make it
    env = worker_env(database_url, client.service_client.config.target_host, queue, tmp_path / "tsa")
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        worker.start()
        await wait_ready(worker)
        async with running_api(settings, client) as http:
            booked = [
                await book_and_pay(sessions, settings, Journey(http, wait_s=SETTLE_WITHIN_S), number, slot_id)
                for number, slot_id in enumerate(slots)
            ]
            user_ids = [b.user_id for b in booked]
            refund_choice, rebook_choice, *silent = booked
            admin = refund_choice.journey.admin

            trigger = asyncio.create_task(kill_mid_fan_out(sessions, worker, user_ids))
            try:
                change = await refund_choice.journey.call(
                    "POST", f"/schedules/{schedule_id}/changes", admin, expected=201,
                    json={"kind": "leave", "reason": "临时外出参加省级会诊"},
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                )  # fmt: skip
                told_at_kill = await trigger
            finally:
                trigger.cancel()
            assert sorted(v["visit_id"] for v in change["visits"]) == sorted(b.visit_id for b in booked)
            await restart(worker, RESTART_AFTER_S)

            # After the restart the offers are there and the patients' choices are carried out.
            await offered(refund_choice)
            ended = await refund_choice.journey.call(
                "POST", f"/visits/{refund_choice.visit_id}/leave-choice", refund_choice.journey.patient,
                json={"choice": "refund"},
            )  # fmt: skip
            assert ended["stage"] == "cancelled" and ended["refunded_fen"] == FEE_FEN
            await offered(rebook_choice)
            moved = await rebook_choice.journey.call(
                "POST", f"/visits/{rebook_choice.visit_id}/leave-choice", rebook_choice.journey.patient,
                json={"choice": "rebook", "slot_id": cheaper[0]}, headers={"Idempotency-Key": str(uuid.uuid4())},
            )  # fmt: skip
            assert moved["slot_id"] == cheaper[0] and moved["stage"] == "waiting_doctor"

            # The silent patients are refunded once the window passes, and the change ends.
            progress = await refund_choice.journey.until(
                "停诊处理完成",
                lambda: refund_choice.journey.call("GET", f"/schedule-changes/{change['change_id']}", admin),
                lambda c: c["status"] == "done",
            )
            for patient in silent:
                await patient.journey.visit_stage(patient.visit_id, "cancelled", patient.journey.patient)
            refunded = [refund_choice, *silent]
            refunded_users = [p.user_id for p in refunded]
            leave_notices = await until_notified(sessions, LEAVE_NOTICE, user_ids)
            refund_notices = await until_notified(sessions, "visit_leave_refunded", refunded_users)
            rebook_notices = await until_notified(sessions, "visit_rebooked", [rebook_choice.user_id])
        worker.stop()
    finally:
        worker.sigkill()  # a no-op when it already stopped; never leaves a worker behind on failure

    # The kill came mid-way through the fan-out: some patients had their leave notice, not all.
    assert len(worker.started) == 2
    assert 1 <= told_at_kill < PATIENTS, f"{told_at_kill} of {PATIENTS} patients had their notice at the kill"

    assert {v["visit_id"]: v["outcome"] for v in progress["visits"]} == {
        **{p.visit_id: "refunded" for p in refunded},
        rebook_choice.visit_id: "rebooked",
    }
    # Every booked patient was told of the leave exactly once, and of how their visit ended.
    assert leave_notices == Counter(user_ids)
    assert refund_notices == Counter(refunded_users)
    assert rebook_notices == Counter([rebook_choice.user_id])

    expected_refund = {p.bill_id: FEE_FEN for p in refunded} | {rebook_choice.bill_id: FEE_FEN - CHEAPER_FEE_FEN}
    bill_ids = list(expected_refund)
    async with sessions() as session:
        refund_calls = Counter(
            (
                await session.execute(
                    select(col(SandboxCall.request)["out_trade_no"].astext).where(
                        col(SandboxCall.system) == "payment", col(SandboxCall.operation) == "refund"
                    )
                )
            ).scalars()
        )
        channel_refunds = dict(
            (
                await session.execute(
                    select(col(SandboxRefund.out_trade_no), func.sum(col(SandboxRefund.amount_fen)))
                    .where(col(SandboxRefund.out_trade_no).in_(bill_ids))
                    .group_by(col(SandboxRefund.out_trade_no))
                )
            ).all()
        )
        bills = dict(
            (
                await session.execute(select(col(Bill.id), col(Bill.refunded_fen)).where(col(Bill.id).in_(bill_ids)))
            ).all()
        )
        stages = dict(
            (
                await session.execute(
                    select(col(Visit.id), col(Visit.stage)).where(col(Visit.id).in_([b.visit_id for b in booked]))
                )
            ).all()
        )
        row = await session.get(ScheduleChange, change["change_id"])
        audited = (
            (
                await session.execute(
                    select(AuditEvent).where(
                        col(AuditEvent.action) == "schedule.leave", col(AuditEvent.subject_id) == schedule_id
                    )
                )
            )
            .scalars()
            .all()
        )

    # One refund call per bill reached the channel, for the right amount, and the bill records it.
    assert {bill: refund_calls[bill] for bill in bill_ids} == dict.fromkeys(bill_ids, 1)
    assert channel_refunds == expected_refund
    assert bills == expected_refund
    assert stages == {**{p.visit_id: "cancelled" for p in refunded}, rebook_choice.visit_id: "waiting_doctor"}

    assert row is not None and row.status == "done" and row.finished_at is not None
    assert row.affected_visits == PATIENTS
    assert [(a.subject_type, a.detail["change_id"]) for a in audited] == [("schedule", change["change_id"])]

"""SupervisionUpload against the dev server with a fake platform: a day is sent in batches, each after the last id
the previous one examined, the totals add up, and the admins are told once when the platform rejected any record
(nobody otherwise). DailySupervisionUpload from its Schedule: yesterday's and today's upload of each kind (Beijing
time) under their business ids, run to the end; a day and kind already being uploaded is left to that run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from models.common import HOSPITAL_TZ
from models.supervision import (
    KIND_NAMES,
    DailySupervisionInput,
    SupervisionKind,
    SupervisionUploadInput,
    SupervisionUploadResult,
    UploadTotals,
)
from tests.workflows.conftest import first_scheduled_run
from tests.workflows.supervision_fakes import SupervisionWorld
from workflows.supervision import (
    SCHEDULE_ID,
    DailySupervisionUploadWorkflow,
    SupervisionUploadWorkflow,
    supervision_schedule,
    supervision_workflow_id,
)

REVISITS = ["rv-01", "rv-02", "rv-03", "rv-04", "rv-05"]
PRESCRIPTIONS = ["rx-01", "rx-02", "rx-03"]
ALL_KINDS = list(SupervisionKind)


def launcher_ids(kinds: Iterable[SupervisionKind]) -> list[str]:
    """The ids a daily run started now would give its uploads: yesterday's, then today's, each kind in turn."""
    today = datetime.now(HOSPITAL_TZ).date()
    return [supervision_workflow_id(kind, day) for day in (today - timedelta(days=1), today) for kind in kinds]


async def results(client: Client, workflow_ids: Iterable[str]) -> list[SupervisionUploadResult]:
    return [
        await client.get_workflow_handle_for(SupervisionUploadWorkflow.run, workflow_id).result()
        for workflow_id in workflow_ids
    ]


async def end_leftovers(client: Client, workflow_ids: Iterable[str]) -> None:
    """Terminate what a failed test left running, so the next test's daily run is not told the day is under way."""
    for workflow_id in workflow_ids:
        handle = client.get_workflow_handle(workflow_id)
        try:
            if (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
                await handle.terminate(reason="test cleanup")
        except RPCError:
            pass


async def upload(client: Client, queue: str, kind: SupervisionKind, day: date) -> SupervisionUploadResult:
    return await client.execute_workflow(
        SupervisionUploadWorkflow.run,
        SupervisionUploadInput(kind=kind, day=day, batch_size=2),
        id=supervision_workflow_id(kind, day),
        task_queue=queue,
    )


async def test_a_day_in_batches_with_a_rejection_tells_the_admins_once(client: Client, uid: str) -> None:
    world = SupervisionWorld({SupervisionKind.REVISIT: REVISITS}, rejected={"rv-03"})
    queue = f"wf-supervise-{uid}"
    day = date(2026, 11, 20)
    async with world.running(client, queue):
        result = await upload(client, queue, SupervisionKind.REVISIT, day)
    assert (result.kind, result.day) == (SupervisionKind.REVISIT, day)
    assert result.totals == UploadTotals(examined=5, accepted=4, rejected=1)
    # Each batch starts after the last id the previous one examined; the short third one ends the day.
    assert [(b.after, b.size, b.kind, b.day) for b in world.batches] == [
        (None, 2, SupervisionKind.REVISIT, day),
        ("rv-02", 2, SupervisionKind.REVISIT, day),
        ("rv-04", 2, SupervisionKind.REVISIT, day),
    ]
    [notice] = world.notices
    assert (notice.user_ref, notice.template) == ("role:admin", "supervision_rejected")
    assert notice.params == {
        "kind": KIND_NAMES[SupervisionKind.REVISIT],
        "day": "2026-11-20",
        "rejected": "1",
        "accepted": "4",
    }
    workflow_id = supervision_workflow_id(SupervisionKind.REVISIT, day)
    first_run = (await client.get_workflow_handle(workflow_id).describe()).run_id
    assert notice.key == f"{workflow_id}:{first_run}:rejected"

    # The day uploaded again (the hourly Schedule, an operator) meets the rejection again: that run tells them too.
    async with world.running(client, queue):
        await upload(client, queue, SupervisionKind.REVISIT, day)
    assert len({n.key for n in world.notices}) == 2


async def test_a_day_without_rejection_tells_nobody(client: Client, uid: str) -> None:
    world = SupervisionWorld({SupervisionKind.PRESCRIPTION: PRESCRIPTIONS})
    queue = f"wf-supervise-{uid}"
    day = date(2026, 11, 21)
    async with world.running(client, queue):
        result = await upload(client, queue, SupervisionKind.PRESCRIPTION, day)
    assert result.totals == UploadTotals(examined=3, accepted=3, rejected=0)
    # The second batch was full, so a third one found the day had no more.
    assert [b.after for b in world.batches] == [None, "rx-02"]
    assert world.notices == []


async def test_the_schedule_uploads_yesterday_and_today_of_each_kind(client: Client, uid: str) -> None:
    world = SupervisionWorld({SupervisionKind.REVISIT: REVISITS, SupervisionKind.PRESCRIPTION: PRESCRIPTIONS})
    queue = f"wf-supervise-{uid}"
    before = launcher_ids(ALL_KINDS)
    started: list[str] = []
    try:
        async with world.running(client, queue):
            handle = await client.create_schedule(
                f"{SCHEDULE_ID}-{uid}", supervision_schedule(queue, timedelta(days=1)), trigger_immediately=True
            )
            try:
                launcher = client.get_workflow_handle_for(
                    DailySupervisionUploadWorkflow.run, await first_scheduled_run(handle)
                )
                started = await launcher.result()
            finally:
                await handle.delete()
            after = launcher_ids(ALL_KINDS)
            assert started in (before, after)
            uploads = await results(client, started)
    finally:
        await end_leftovers(client, {*before, *launcher_ids(ALL_KINDS)})
    # Each ran to the end under its own id: all the kind's records of its day.
    assert [supervision_workflow_id(r.kind, r.day) for r in uploads] == started
    assert [r.totals for r in uploads] == [
        UploadTotals(examined=len(world.records[r.kind]), accepted=len(world.records[r.kind])) for r in uploads
    ]
    assert {b.day for b in world.batches} == {r.day for r in uploads}
    assert world.notices == []


async def test_a_day_already_being_uploaded_is_left_to_that_run(client: Client, uid: str) -> None:
    world = SupervisionWorld({SupervisionKind.REVISIT: REVISITS, SupervisionKind.PRESCRIPTION: PRESCRIPTIONS})
    world.gate = asyncio.Event()
    queue = f"wf-supervise-{uid}"
    before = launcher_ids(ALL_KINDS)
    # Today's prescriptions (still yesterday's should the launcher run after midnight): held open at its first batch.
    today = datetime.now(HOSPITAL_TZ).date()
    held_id = supervision_workflow_id(SupervisionKind.PRESCRIPTION, today)
    try:
        async with world.running(client, queue):
            held = await client.start_workflow(
                SupervisionUploadWorkflow.run,
                SupervisionUploadInput(kind=SupervisionKind.PRESCRIPTION, day=today),
                id=held_id,
                task_queue=queue,
            )
            started = await client.execute_workflow(
                DailySupervisionUploadWorkflow.run,
                DailySupervisionInput(),
                id=f"{SCHEDULE_ID}-{uid}",
                task_queue=queue,
            )
            after = launcher_ids(ALL_KINDS)
            assert held_id not in started
            assert started in ([i for i in before if i != held_id], [i for i in after if i != held_id])
            # The held run is still the one uploading that day: nothing replaced it.
            assert (await held.describe()).status is WorkflowExecutionStatus.RUNNING
            world.gate.set()
            uploads = await results(client, started)
            held_result = await held.result()
    finally:
        world.gate.set()
        await end_leftovers(client, {*before, *launcher_ids(ALL_KINDS)})
    assert [supervision_workflow_id(r.kind, r.day) for r in uploads] == started
    assert held_result.totals == UploadTotals(examined=3, accepted=3)
    assert world.notices == []

"""The Complaint flow with fake steps: the admins hear of the complaint with its due time, an admin's answer (an Update
with a validator) is recorded and reaches the patient, and a second answer is refused. The deadline (reminders, then
one escalation, and waiting on) runs on a time-skipping server with the settings' days."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from core.settings import Settings
from models.common import HOSPITAL_TZ
from models.complaint import ComplaintInput, ComplaintResponse, ComplaintState, ComplaintStatus
from models.notify import FEEDBACK_HANDLERS, Notice
from tests.workflows.complaint_fakes import ComplaintWorld
from tests.workflows.conftest import refusal_type
from workflows.complaint import ComplaintWorkflow, complaint_workflow_id

DAY = timedelta(days=1)
ANSWER = ComplaintResponse(responder_id="u-admin", response="已核实，破损药品明日补发。")


def complaint(complaint_id: str, settings: Settings) -> ComplaintInput:
    return ComplaintInput(
        complaint_id=complaint_id,
        patient_ref="patient:pat-1",
        subject="处方 visit-1-rx1",
        category_name="配送",
        text="药品送达时包装破损。",
        answer_within_s=settings.complaint_answer_within_s,
        remind_every_s=settings.complaint_remind_every_s,
    )


async def start(client: Client, queue: str, run: ComplaintInput) -> WorkflowHandle:
    return await client.start_workflow(
        ComplaintWorkflow.run, run, id=complaint_workflow_id(run.complaint_id), task_queue=queue
    )


async def sent(world: ComplaintWorld, count: int) -> list[Notice]:
    """The notices once `count` have gone out (beside the flow, so a moment after it moved on)."""
    for _ in range(100):
        if len(world.notices) >= count:
            return list(world.notices)
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} notices expected, got {world.notices}")


async def test_the_admins_hear_of_it_and_the_answer_reaches_the_patient(
    client: Client, settings: Settings, uid: str
) -> None:
    world = ComplaintWorld()
    queue = f"wf-complaint-{uid}"
    async with world.running(client, queue):
        handle = await start(client, queue, complaint(f"cmp-{uid}", settings))
        [received] = await sent(world, 1)
        assert (received.user_ref, received.template) == (FEEDBACK_HANDLERS, "complaint_received")
        assert set(received.params) == {"complaint_id", "category", "subject", "text", "due"}
        assert (received.params["category"], received.params["subject"]) == ("配送", "处方 visit-1-rx1")
        waiting: ComplaintState = await handle.query(ComplaintWorkflow.state)
        assert waiting.status is ComplaintStatus.OPEN and waiting.due_at is not None
        # The due time as the hospital reads it: Beijing time, to the minute.
        assert received.params["due"] == waiting.due_at.astimezone(HOSPITAL_TZ).strftime("%Y-%m-%d %H:%M")

        answered = await handle.execute_update(ComplaintWorkflow.respond, ANSWER)
        assert (answered.status, answered.response, answered.responded_by) == (
            ComplaintStatus.ANSWERED,
            ANSWER.response,
            "u-admin",
        )
        assert (await handle.result()).status is ComplaintStatus.ANSWERED
    assert [(cid, answer) for cid, answer, _ in world.responses] == [(f"cmp-{uid}", ANSWER)]
    assert world.responses[0][2] == answered.responded_at
    told = world.notices[-1]
    assert (told.user_ref, told.template) == ("patient:pat-1", "complaint_answered")
    assert told.params == {"subject": "处方 visit-1-rx1", "complaint_id": f"cmp-{uid}", "response": ANSWER.response}
    assert world.escalations == []


async def test_a_second_answer_is_refused(client: Client, settings: Settings, uid: str) -> None:
    world = ComplaintWorld()
    world.gate = asyncio.Event()
    queue = f"wf-complaint-{uid}"
    async with world.running(client, queue):
        handle = await start(client, queue, complaint(f"cmp-{uid}", settings))
        first = asyncio.create_task(handle.execute_update(ComplaintWorkflow.respond, ANSWER))
        await world.recording.wait()
        # The first answer is being recorded: the second is refused before anything is written.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                ComplaintWorkflow.respond, ComplaintResponse(responder_id="u-other", response="另一个答复")
            )
        assert refusal_type(refused.value) == "COMPLAINT_ANSWERED"
        world.gate.set()
        assert (await first).responded_by == "u-admin"
        await handle.result()
    assert [answer.responder_id for _, answer, _ in world.responses] == ["u-admin"]
    assert [notice.template for notice in world.notices] == ["complaint_received", "complaint_answered"]


# --- the deadline, on a server whose clock the test moves (time skipping) ---


async def test_unanswered_it_reminds_the_admins_then_escalates_once_and_waits_on(
    skipping: WorkflowEnvironment, settings: Settings, uid: str
) -> None:
    assert (settings.complaint_answer_within_s, settings.complaint_remind_every_s) == (3 * 86400, 86400)
    world = ComplaintWorld()
    queue = f"wf-complaint-{uid}"
    async with world.running(skipping.client, queue):
        handle = await start(skipping.client, queue, complaint(f"cmp-{uid}", settings))
        [received] = await sent(world, 1)

        await skipping.fast_forward(handle, DAY + timedelta(hours=1))
        await sent(world, 2)
        await skipping.fast_forward(handle, DAY)
        notices = await sent(world, 3)
        assert [n.template for n in notices] == ["complaint_received", "complaint_reminder", "complaint_reminder"]
        assert all(n.user_ref == FEEDBACK_HANDLERS for n in notices)
        assert notices[1].params == {"complaint_id": f"cmp-{uid}", "due": received.params["due"]}
        assert not (await handle.query(ComplaintWorkflow.state)).escalated and world.escalations == []

        await skipping.fast_forward(handle, DAY)
        overdue = (await sent(world, 4))[-1]
        assert (overdue.user_ref, overdue.template) == ("role:admin", "complaint_overdue")
        assert overdue.params == {"complaint_id": f"cmp-{uid}", "due": received.params["due"]}
        state = await handle.query(ComplaintWorkflow.state)
        assert state.escalated and state.status is ComplaintStatus.OPEN
        assert world.escalations == [f"cmp-{uid}"]

        # Never closed by the clock, and escalated once only.
        await skipping.fast_forward(handle, 10 * DAY)
        assert (await handle.query(ComplaintWorkflow.state)).status is ComplaintStatus.OPEN
        assert len(world.notices) == 4 and world.escalations == [f"cmp-{uid}"]

        answered = await handle.execute_update(ComplaintWorkflow.respond, ANSWER)
        assert answered.status is ComplaintStatus.ANSWERED and answered.escalated
        await handle.result()
    assert world.notices[-1].template == "complaint_answered"


async def test_answered_before_the_deadline_the_patient_is_told_and_nothing_is_overdue(
    skipping: WorkflowEnvironment, settings: Settings, uid: str
) -> None:
    world = ComplaintWorld()
    queue = f"wf-complaint-{uid}"
    async with world.running(skipping.client, queue):
        handle = await start(skipping.client, queue, complaint(f"cmp-{uid}", settings))
        await sent(world, 1)
        await skipping.fast_forward(handle, DAY + timedelta(hours=12))
        await sent(world, 2)
        answered = await handle.execute_update(ComplaintWorkflow.respond, ANSWER)
        assert answered.status is ComplaintStatus.ANSWERED and not answered.escalated
        await handle.result()
    assert [(n.user_ref, n.template) for n in world.notices] == [
        (FEEDBACK_HANDLERS, "complaint_received"),
        (FEEDBACK_HANDLERS, "complaint_reminder"),
        ("patient:pat-1", "complaint_answered"),
    ]
    assert world.escalations == []

"""Record the history of a complaint under `tests/histories/`, as `tests/replay/record.py` does for the others (same
rules: record only new scenarios; never re-record to make a replay pass): the admins reminded, the complaint escalated
at its deadline, then answered.

Run with `.venv/bin/python -m tests.replay.record_complaint`.
"""

from __future__ import annotations

import asyncio

from models.complaint import ComplaintInput, ComplaintResponse
from tests.replay.record import Recorder, main
from tests.workflows.complaint_fakes import ComplaintWorld
from workflows.complaint import ComplaintWorkflow, complaint_workflow_id

QUEUE = "record-complaint"


async def reminded_escalated_answered(recorder: Recorder) -> None:
    """In seconds: a reminder after one, the escalation at two, then an admin's answer."""
    world = ComplaintWorld()
    async with world.running(recorder.client, QUEUE):
        workflow_id = complaint_workflow_id("cmp-recorded")
        handle = await recorder.client.start_workflow(
            ComplaintWorkflow.run,
            ComplaintInput(
                complaint_id="cmp-recorded",
                patient_ref="patient:pat-1",
                subject="处方 visit-1-rx1",
                category_name="配送",
                text="药品送达时包装破损。",
                answer_within_s=2,
                remind_every_s=1,
            ),
            id=workflow_id,
            task_queue=QUEUE,
        )
        for _ in range(200):
            if world.escalations:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the complaint was never escalated")
        await handle.execute_update(
            ComplaintWorkflow.respond, ComplaintResponse(responder_id="u-admin", response="破损药品已于今日补发。")
        )
        await handle.result()
        await recorder.save(workflow_id, "Complaint-reminded_escalated_answered")


SCENARIOS = {"Complaint-reminded_escalated_answered": reminded_escalated_answered}


if __name__ == "__main__":
    main(SCENARIOS)

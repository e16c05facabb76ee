"""Record the histories of the supervision upload flows under `tests/histories/`, as `tests/replay/record.py` does for
the others (same rules: record only new scenarios; never re-record to make a replay pass), with the fake platform of
`tests/workflows/supervision_fakes.py`.

Run with `.venv/bin/python -m tests.replay.record_supervision [scenario …]`.
"""

from __future__ import annotations

from datetime import date

from models.supervision import DailySupervisionInput, SupervisionKind, SupervisionUploadInput
from tests.replay.record import Recorder, Scenario, main
from tests.workflows.supervision_fakes import SupervisionWorld
from workflows.supervision import (
    SCHEDULE_ID,
    DailySupervisionUploadWorkflow,
    SupervisionUploadWorkflow,
    supervision_workflow_id,
)

QUEUE = "record-supervision"
REVISITS = ["rv-01", "rv-02", "rv-03", "rv-04", "rv-05"]
PRESCRIPTIONS = ["rx-01", "rx-02", "rx-03"]


async def batches_rejected_notified(recorder: Recorder) -> None:
    """Five revisit records in batches of two, one rejected by the platform: the admins are told."""
    world = SupervisionWorld({SupervisionKind.REVISIT: REVISITS}, rejected={"rv-03"})
    day = date(2026, 11, 20)
    workflow_id = supervision_workflow_id(SupervisionKind.REVISIT, day)
    async with world.running(recorder.client, QUEUE):
        await recorder.client.execute_workflow(
            SupervisionUploadWorkflow.run,
            SupervisionUploadInput(kind=SupervisionKind.REVISIT, day=day, batch_size=2),
            id=workflow_id,
            task_queue=QUEUE,
        )
        await recorder.save(workflow_id, "SupervisionUpload-batches_rejected_notified")


async def daily_yesterday_and_today(recorder: Recorder) -> None:
    """The Schedule's run: yesterday's and today's upload of both kinds, each started and run to the end."""
    world = SupervisionWorld({SupervisionKind.REVISIT: REVISITS, SupervisionKind.PRESCRIPTION: PRESCRIPTIONS})
    workflow_id = f"{SCHEDULE_ID}-recorded"
    async with world.running(recorder.client, QUEUE):
        started = await recorder.client.execute_workflow(
            DailySupervisionUploadWorkflow.run, DailySupervisionInput(), id=workflow_id, task_queue=QUEUE
        )
        if len(started) != 4:
            raise AssertionError(f"the daily run started {started}, not four uploads")
        for child_id in started:
            await recorder.client.get_workflow_handle(child_id).result()
        await recorder.save(workflow_id, "DailySupervisionUpload-yesterday_and_today")


SCENARIOS: dict[str, Scenario] = {
    "SupervisionUpload-batches_rejected_notified": batches_rejected_notified,
    "DailySupervisionUpload-yesterday_and_today": daily_yesterday_and_today,
}


if __name__ == "__main__":
    main(SCENARIOS)

"""Record the history of a low rating's follow-up under `tests/histories/`, as `tests/replay/record.py` does for the
others (same rules: record only new scenarios; never re-record to make a replay pass).

Run with `.venv/bin/python -m tests.replay.record_evaluation`.
"""

from __future__ import annotations

import asyncio

from models.evaluation import HandleEvaluation
from tests.replay.record import Recorder, main
from tests.workflows.evaluation_fakes import EvaluationWorld, low_rating
from workflows.evaluation import EvaluationFollowUpWorkflow, evaluation_workflow_id


async def reminded_handled(recorder: Recorder) -> None:
    world = EvaluationWorld()
    async with world.running(recorder.client, "record-evaluation"):
        workflow_id = evaluation_workflow_id("ev-recorded")
        handle = await recorder.client.start_workflow(
            EvaluationFollowUpWorkflow.run,
            low_rating("ev-recorded", remind_every_s=1),
            id=workflow_id,
            task_queue="record-evaluation",
        )
        for _ in range(200):  # the first reminder
            if len(world.notices) >= 2:
                break
            await asyncio.sleep(0.05)
        await handle.execute_update(
            EvaluationFollowUpWorkflow.handle, HandleEvaluation(handled_by="u-admin", note="已电话回访患者")
        )
        await handle.result()
        await recorder.save(workflow_id, "EvaluationFollowUp-reminded_handled")


SCENARIOS = {"EvaluationFollowUp-reminded_handled": reminded_handled}


if __name__ == "__main__":
    main(SCENARIOS)

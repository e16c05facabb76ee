"""Record the history of a catalogue change under `tests/histories/`, as `tests/replay/record.py` does for the others
(same rules: record only new scenarios; never re-record to make a replay pass).

Run with `.venv/bin/python -m tests.replay.record_catalog`.
"""

from __future__ import annotations

import contextlib

from temporalio.client import WorkflowUpdateFailedError

from models.catalog import CatalogDecision
from tests.replay.record import Recorder, main
from tests.workflows.catalog_fakes import CatalogWorld, proposal
from workflows.catalog import CatalogChangeWorkflow, catalog_workflow_id


async def conflict_then_approved(recorder: Recorder) -> None:
    world = CatalogWorld()
    world.conflicts = 1
    async with world.running(recorder.client, "record-catalog"):
        workflow_id = catalog_workflow_id("cc-recorded")
        handle = await recorder.client.start_workflow(
            CatalogChangeWorkflow.run, proposal("cc-recorded"), id=workflow_id, task_queue="record-catalog"
        )
        approve = CatalogDecision(approver_user_id="u-ph-2", approve=True, note="同意")
        with contextlib.suppress(WorkflowUpdateFailedError):  # the catalogue moved: refused, still pending
            await handle.execute_update(CatalogChangeWorkflow.decide, approve)
        await handle.execute_update(CatalogChangeWorkflow.decide, approve)
        await handle.result()
        await recorder.save(workflow_id, "CatalogChange-conflict_then_published")


SCENARIOS = {"CatalogChange-conflict_then_published": conflict_then_approved}


if __name__ == "__main__":
    main(SCENARIOS)

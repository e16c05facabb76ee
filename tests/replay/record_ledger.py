"""Record the history of the evidence ledger's tree-head flow under `tests/histories/`, as `tests/replay/record.py`
does for the others (same rules: record only new scenarios; never re-record to make a replay pass).

Run with `.venv/bin/python -m tests.replay.record_ledger`.
"""

from __future__ import annotations

from temporalio.worker import Worker

from tests.replay.record import Recorder, main
from tests.workflows.test_ledger import fake_sign_tree_head
from workflows.ledger import LedgerTreeHeadWorkflow


async def tree_head_signed(recorder: Recorder) -> None:
    queue = "record-ledger"
    async with (
        Worker(recorder.client, task_queue=queue, workflows=[LedgerTreeHeadWorkflow]),
        Worker(recorder.client, task_queue=f"{queue}-integrations", activities=[fake_sign_tree_head]),
    ):
        workflow_id = "ledger-tree-head-recorded"
        await recorder.client.execute_workflow(LedgerTreeHeadWorkflow.run, id=workflow_id, task_queue=queue)
        await recorder.save(workflow_id, "LedgerTreeHead-signed")


SCENARIOS = {"LedgerTreeHead-signed": tree_head_signed}


if __name__ == "__main__":
    main(SCENARIOS)

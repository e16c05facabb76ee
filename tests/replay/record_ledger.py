"""Record the history of the evidence ledger's tree-head flow under `tests/histories/`, as `tests/replay/record.py`
does for the others (same rules: record only new scenarios; never re-record to make a replay pass).

Run with `.venv/bin/python -m tests.replay.record_ledger`.
"""

from __future__ import annotations

from temporalio.worker import Worker

from tests.replay.record import Recorder, main
from tests.workflows.test_ledger import fake_anchor_tree_head, fake_sign_tree_head
from workflows.ledger import LedgerTreeHeadWorkflow


async def tree_head_signed(recorder: Recorder) -> None:
    """Recorded before the `ledger-anchor` patch: its file shows the flows started then. Do not re-record it (today's
    code would wait for an anchor step this scenario has no worker for)."""
    queue = "record-ledger"
    async with (
        Worker(recorder.client, task_queue=queue, workflows=[LedgerTreeHeadWorkflow]),
        Worker(recorder.client, task_queue=f"{queue}-integrations", activities=[fake_sign_tree_head]),
    ):
        workflow_id = "ledger-tree-head-recorded"
        await recorder.client.execute_workflow(LedgerTreeHeadWorkflow.run, id=workflow_id, task_queue=queue)
        await recorder.save(workflow_id, "LedgerTreeHead-signed")


async def tree_head_signed_and_anchored(recorder: Recorder) -> None:
    """The head is anchored on the consortium chain after it is signed (the `ledger-anchor` patch)."""
    queue = "record-ledger-anchor"
    async with (
        Worker(recorder.client, task_queue=queue, workflows=[LedgerTreeHeadWorkflow]),
        Worker(
            recorder.client,
            task_queue=f"{queue}-integrations",
            activities=[fake_sign_tree_head, fake_anchor_tree_head],
        ),
    ):
        workflow_id = "ledger-tree-head-anchored-recorded"
        await recorder.client.execute_workflow(LedgerTreeHeadWorkflow.run, id=workflow_id, task_queue=queue)
        await recorder.save(workflow_id, "LedgerTreeHead-signed_and_anchored")


SCENARIOS = {
    "LedgerTreeHead-signed": tree_head_signed,
    "LedgerTreeHead-signed_and_anchored": tree_head_signed_and_anchored,
}


if __name__ == "__main__":
    main(SCENARIOS)

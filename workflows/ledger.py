"""Evidence ledger tree heads (存证): a Temporal Schedule starts this flow periodically; each run signs and timestamps
the head over every entry appended so far and, where a consortium chain is configured, anchors it there. Runs never
overlap, and a run with nothing new returns the latest head without asking the TSA (or the chain) again, so a missed or
extra trigger costs nothing.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from models.ledger import TreeHead
    from workflows.steps import call


SCHEDULE_ID = "ledger-tree-head"
# Bounds how long an appended entry waits for a signed, timestamped head; each head costs one TSA stamp.
DEFAULT_INTERVAL = timedelta(minutes=10)
# Runs started before anchoring existed sign only; new ones also anchor (the step is a no-op without a chain).
ANCHOR_PATCH = "ledger-anchor"


@workflow.defn(name="LedgerTreeHead")
class LedgerTreeHeadWorkflow:
    @workflow.run
    async def run(self) -> TreeHead:
        head: TreeHead = await call(LedgerActivities.sign_tree_head)
        if workflow.patched(ANCHOR_PATCH):
            await call(LedgerActivities.anchor_tree_head, head)
        return head


def tree_head_schedule(task_queue: str, every: timedelta = DEFAULT_INTERVAL) -> Schedule:
    """The Schedule to create (or update) under SCHEDULE_ID; its runs use the workflow id `ledger-tree-head-<time>`."""
    return Schedule(
        action=ScheduleActionStartWorkflow(LedgerTreeHeadWorkflow.run, id=SCHEDULE_ID, task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )

"""The baseline of the journey benchmark: a workflow that runs `steps` no-op activities one after another.

Kept in its own module with nothing but Temporal imports, so the workflow sandbox re-imports only this small file
for each run (a workflow defined in `journey.py` would drag that file's database imports into every run).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="BenchNoop")
async def noop(step: int) -> int:
    return step


@workflow.defn(name="BenchBare")
class BareWorkflow:
    @workflow.run
    async def run(self, steps: int) -> int:
        # Regular activities on the workflow's own task queue, with the default retry policy.
        for step in range(steps):
            await workflow.execute_activity(noop, step, start_to_close_timeout=timedelta(seconds=30))
        return steps

"""SecurityHousekeeping: run directly and from its Schedule, with a fake purge."""

from __future__ import annotations

from temporalio.client import Client

from models.housekeeping import HousekeepingInput, HousekeepingResult
from tests.workflows.account_fakes import HousekeepingWorld
from tests.workflows.conftest import first_scheduled_run
from workflows.housekeeping import SCHEDULE_ID, SecurityHousekeepingWorkflow, housekeeping_schedule


async def test_run_purges_with_the_window_it_was_given(client: Client, uid: str) -> None:
    world = HousekeepingWorld()
    queue = f"wf-housekeeping-{uid}"
    async with world.running(client, queue):
        result = await client.execute_workflow(
            SecurityHousekeepingWorkflow.run,
            HousekeepingInput(login_failure_window_s=900),
            id=f"{SCHEDULE_ID}-{uid}",
            task_queue=queue,
        )
    assert result == HousekeepingResult(login_throttle_purged=3)
    assert world.windows == [900]


async def test_schedule_starts_it(client: Client, uid: str) -> None:
    world = HousekeepingWorld()
    queue = f"wf-housekeeping-{uid}"
    chores = HousekeepingInput(login_failure_window_s=600)
    async with world.running(client, queue):
        handle = await client.create_schedule(
            f"{SCHEDULE_ID}-{uid}", housekeeping_schedule(queue, chores), trigger_immediately=True
        )
        try:
            run = client.get_workflow_handle_for(SecurityHousekeepingWorkflow.run, await first_scheduled_run(handle))
            assert (await run.result()).login_throttle_purged == 3
        finally:
            await handle.delete()
    assert world.windows == [600]

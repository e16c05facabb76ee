"""Workers for workflow tests: the real workflows with fake activities, on a private task queue per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pytest_asyncio
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow, ScheduleHandle

from tests.workflows.fakes import FakeWorld
from workers.worker import build_workers


@dataclass
class Harness:
    client: Client
    queue: str
    world: FakeWorld


@pytest_asyncio.fixture
async def harness(client: Client) -> AsyncIterator[Harness]:
    world = FakeWorld()
    queue = f"wf-test-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        for worker in build_workers(client, queue, world.activity_sets()):
            await stack.enter_async_context(worker)
        yield Harness(client=client, queue=queue, world=world)


async def first_scheduled_run(handle: ScheduleHandle) -> str:
    """The workflow id of the first run a Schedule started (created with `trigger_immediately=True`)."""
    for _ in range(150):
        actions = (await handle.describe()).info.recent_actions
        if actions:
            started = actions[0].action
            assert isinstance(started, ScheduleActionExecutionStartWorkflow)
            return started.workflow_id
        await asyncio.sleep(0.2)
    raise AssertionError(f"schedule {handle.id} started nothing")

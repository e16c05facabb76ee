"""Workers for workflow tests: the real workflows with fake activities, on a private task queue per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pytest_asyncio
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow, ScheduleHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment

from core.binaries import find_executable
from core.settings import Settings
from core.temporal import data_converter
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


@pytest_asyncio.fixture(scope="module")
async def skipping(settings: Settings) -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of the test module's own with time skipping allowed: each flow's clock moves only when the test
    says (deadlines and reminders days apart)."""
    env = await WorkflowEnvironment.start_time_skipping_v2(
        ts_config=TimeSkippingConfig(enabled=False),
        dev_server_existing_path=find_executable("temporal"),
        dev_server_extra_args=["--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true"],
        dev_server_log_level="error",
        dev_server_startup_timeout=None,
        data_converter=data_converter(settings),
    )
    yield env
    await env.shutdown()


def refusal_type(failure: WorkflowUpdateFailedError) -> str | None:
    """The stable code of an Update a validator or handler refused."""
    cause = failure.cause
    assert isinstance(cause, ApplicationError)
    return cause.type

"""LedgerTreeHead: run directly and from its Schedule, against the dev server with a fake signing activity."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest_asyncio
from temporalio import activity
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow
from temporalio.worker import Worker

from models.ledger import TreeHead
from workflows.ledger import SCHEDULE_ID, LedgerTreeHeadWorkflow, tree_head_schedule

HEAD = TreeHead(
    size=3,
    root_hash="ab" * 32,
    signed_at=datetime(2026, 11, 26, 2, 0, tzinfo=UTC),
    key_id="cd" * 32,
    signature="3044",
    tsa_token="3082",
    tsa_hash_algorithm="sm3",
    timestamped_at=datetime(2026, 11, 26, 2, 0, 1, tzinfo=UTC),
)


@activity.defn(name="sign_tree_head")
async def fake_sign_tree_head() -> TreeHead:
    return HEAD


@pytest_asyncio.fixture
async def queue(client: Client, uid: str) -> AsyncIterator[str]:
    name = f"wf-ledger-{uid}"
    async with (
        Worker(client, task_queue=name, workflows=[LedgerTreeHeadWorkflow]),
        Worker(client, task_queue=f"{name}-integrations", activities=[fake_sign_tree_head]),
    ):
        yield name


async def test_run_signs_on_the_integration_queue(client: Client, queue: str, uid: str) -> None:
    head = await client.execute_workflow(LedgerTreeHeadWorkflow.run, id=f"ledger-tree-head-{uid}", task_queue=queue)
    assert head == HEAD


async def test_schedule_starts_it(client: Client, queue: str, uid: str) -> None:
    handle = await client.create_schedule(f"{SCHEDULE_ID}-{uid}", tree_head_schedule(queue), trigger_immediately=True)
    try:
        for _ in range(150):
            actions = (await handle.describe()).info.recent_actions
            if actions:
                break
            await asyncio.sleep(0.2)
        started = actions[0].action
        assert isinstance(started, ScheduleActionExecutionStartWorkflow)
        result = await client.get_workflow_handle_for(LedgerTreeHeadWorkflow.run, started.workflow_id).result()
        assert result == HEAD
    finally:
        await handle.delete()

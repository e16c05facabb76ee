"""LedgerTreeHead: run directly and from its Schedule, against the dev server with fake signing and anchoring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest_asyncio
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from models.ledger import AnchorReceipt, TreeHead
from tests.workflows.conftest import first_scheduled_run
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


# The heads the fake chain was asked to anchor, in order.
ANCHORED: list[TreeHead] = []


@activity.defn(name="sign_tree_head")
async def fake_sign_tree_head() -> TreeHead:
    return HEAD


@activity.defn(name="anchor_tree_head")
async def fake_anchor_tree_head(head: TreeHead) -> AnchorReceipt | None:
    ANCHORED.append(head)
    return AnchorReceipt(
        chain="fake-chain",
        tx_id=f"0x{len(ANCHORED):064x}",
        block_height=len(ANCHORED),
        size=head.size,
        root_hash=head.root_hash,
        signature=head.signature,
        anchored_at=head.signed_at,
    )


@pytest_asyncio.fixture
async def queue(client: Client, uid: str) -> AsyncIterator[str]:
    name = f"wf-ledger-{uid}"
    async with (
        Worker(client, task_queue=name, workflows=[LedgerTreeHeadWorkflow]),
        Worker(client, task_queue=f"{name}-integrations", activities=[fake_sign_tree_head, fake_anchor_tree_head]),
    ):
        yield name


async def test_run_signs_and_anchors_on_the_integration_queue(client: Client, queue: str, uid: str) -> None:
    before = len(ANCHORED)
    head = await client.execute_workflow(LedgerTreeHeadWorkflow.run, id=f"ledger-tree-head-{uid}", task_queue=queue)
    assert head == HEAD
    # The signed head, as signed, went to the chain after signing.
    assert ANCHORED[before:] == [HEAD]


async def test_schedule_starts_it(client: Client, queue: str, uid: str) -> None:
    handle = await client.create_schedule(f"{SCHEDULE_ID}-{uid}", tree_head_schedule(queue), trigger_immediately=True)
    try:
        run_id = await first_scheduled_run(handle)
        result = await client.get_workflow_handle_for(LedgerTreeHeadWorkflow.run, run_id).result()
        assert result == HEAD
    finally:
        await handle.delete()

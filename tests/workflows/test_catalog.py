"""CatalogChange against the dev server with fake steps: the approvers hear of the proposal; the proposer cannot
approve their own change; approval publishes it and a rejection does not; a publication that finds the catalogue moved
leaves the change waiting for a rejection; the proposer hears the decision."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

from models.catalog import CatalogDecision, ChangeStatus
from tests.workflows.catalog_fakes import CatalogWorld, proposal
from tests.workflows.conftest import refusal_type
from workflows.catalog import APPROVERS, CatalogChangeWorkflow, catalog_workflow_id

APPROVE = CatalogDecision(approver_user_id="u-ph-2", approve=True, note="同意")


async def _start(client: Client, queue: str, change_id: str) -> WorkflowHandle:
    return await client.start_workflow(
        CatalogChangeWorkflow.run, proposal(change_id), id=catalog_workflow_id(change_id), task_queue=queue
    )


async def _refused(handle: WorkflowHandle, decision: CatalogDecision) -> str | None:
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(CatalogChangeWorkflow.decide, decision)
    return refusal_type(failed.value)


async def test_approved_by_another_pharmacist_it_is_published(client: Client, uid: str) -> None:
    world = CatalogWorld()
    queue = f"wf-catalog-{uid}"
    async with world.running(client, queue):
        handle = await _start(client, queue, f"cc-{uid}")
        own = CatalogDecision(approver_user_id="u-ph-1", approve=True)
        assert await _refused(handle, own) == "SAME_PHARMACIST"
        state = await handle.execute_update(CatalogChangeWorkflow.decide, APPROVE)
        assert (state.status, state.decided_by, state.note) == (ChangeStatus.PUBLISHED, "u-ph-2", "同意")
        assert (await handle.result()).status is ChangeStatus.PUBLISHED
    assert world.published == [(f"cc-{uid}", APPROVE)] and world.rejected == []
    proposed, decided = world.notices
    assert (proposed.user_ref, proposed.template, proposed.params["herb"]) == (
        APPROVERS,
        "catalog_change_proposed",
        "佛手",
    )
    assert (decided.user_ref, decided.template) == ("pharmacist:ph-1", "catalog_change_decided")
    assert (decided.params["result"], decided.params["kind"]) == ("已审核发布", "新增")


async def test_a_conflicting_publication_waits_for_a_rejection(client: Client, uid: str) -> None:
    world = CatalogWorld()
    world.conflicts = 1
    queue = f"wf-catalog-{uid}"
    async with world.running(client, queue):
        handle = await _start(client, queue, f"cc-{uid}")
        assert await _refused(handle, APPROVE) == "CATALOG_CONFLICT"
        assert (await handle.query(CatalogChangeWorkflow.state)).status is ChangeStatus.PENDING
        rejection = CatalogDecision(approver_user_id="u-ph-2", approve=False, note="药品代码冲突，请重新提交")
        state = await handle.execute_update(CatalogChangeWorkflow.decide, rejection)
        assert state.status is ChangeStatus.REJECTED
        await handle.result()
    assert world.published == [] and world.rejected == [(f"cc-{uid}", rejection)]
    assert world.notices[-1].params["result"] == "未通过审核"
    assert world.notices[-1].params["note"] == "药品代码冲突，请重新提交"


async def test_two_approvals_at_once_publish_once(client: Client, uid: str) -> None:
    world = CatalogWorld()
    queue = f"wf-catalog-{uid}"
    async with world.running(client, queue):
        handle = await _start(client, queue, f"cc-{uid}")
        second = CatalogDecision(approver_user_id="u-ph-3", approve=True)
        answers = await asyncio.gather(
            handle.execute_update(CatalogChangeWorkflow.decide, APPROVE),
            handle.execute_update(CatalogChangeWorkflow.decide, second),
            return_exceptions=True,
        )
        await handle.result()
    assert len(world.published) == 1
    [refused] = [answer for answer in answers if isinstance(answer, WorkflowUpdateFailedError)]
    assert refusal_type(refused) == "CHANGE_DECIDED"

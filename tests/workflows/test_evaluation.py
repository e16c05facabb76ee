"""EvaluationFollowUp against the dev server with fake steps: the feedback handlers hear of a low rating at once and
again every interval until one of them records what was done, which ends the flow."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from models.evaluation import HandleEvaluation
from models.notify import FEEDBACK_HANDLERS
from tests.workflows.evaluation_fakes import EvaluationWorld, low_rating
from workflows.evaluation import EvaluationFollowUpWorkflow, evaluation_workflow_id


async def _notices(world: EvaluationWorld, count: int) -> list[str]:
    for _ in range(200):
        if len(world.notices) >= count:
            return [notice.template for notice in world.notices]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} notices expected, got {world.notices}")


async def test_a_low_rating_is_brought_up_until_handled(client: Client, uid: str) -> None:
    world = EvaluationWorld()
    queue = f"wf-evaluation-{uid}"
    async with world.running(client, queue):
        handle = await client.start_workflow(
            EvaluationFollowUpWorkflow.run,
            low_rating(f"ev-{uid}", remind_every_s=1),
            id=evaluation_workflow_id(f"ev-{uid}"),
            task_queue=queue,
        )
        assert (await _notices(world, 3))[:3] == ["evaluation_low", "evaluation_reminder", "evaluation_reminder"]
        received = world.notices[0]
        assert received.user_ref == FEEDBACK_HANDLERS
        assert (received.params["doctor_rating"], received.params["hospital_rating"]) == ("1", "2")
        assert received.params["comment"] == "等了很久医生才接诊。"

        state = await handle.execute_update(
            EvaluationFollowUpWorkflow.handle, HandleEvaluation(handled_by="u-admin", note="已电话回访患者并致歉")
        )
        assert (state.handled, state.handled_by, state.note) == (True, "u-admin", "已电话回访患者并致歉")
        final = await handle.result()
        # Handled, the flow has ended: a second handling finds nothing to update (the API answers it from the table).
        with pytest.raises(RPCError, match="already completed"):
            await handle.execute_update(
                EvaluationFollowUpWorkflow.handle, HandleEvaluation(handled_by="u-x", note="再次")
            )
    assert final.handled and final.reminders >= 2
    assert world.handled == [(f"ev-{uid}", HandleEvaluation(handled_by="u-admin", note="已电话回访患者并致歉"))]
    # No reminder after the handling.
    assert len([n for n in world.notices if n.template == "evaluation_reminder"]) == final.reminders


async def test_handled_at_once_sends_no_reminder(client: Client, uid: str) -> None:
    world = EvaluationWorld()
    queue = f"wf-evaluation-{uid}"
    async with world.running(client, queue):
        handle = await client.start_workflow(
            EvaluationFollowUpWorkflow.run,
            low_rating(f"ev-{uid}"),
            id=evaluation_workflow_id(f"ev-{uid}"),
            task_queue=queue,
        )
        await handle.execute_update(
            EvaluationFollowUpWorkflow.handle, HandleEvaluation(handled_by="u-admin", note="已处理")
        )
        assert (await handle.result()).reminders == 0
    assert [notice.template for notice in world.notices] == ["evaluation_low"]

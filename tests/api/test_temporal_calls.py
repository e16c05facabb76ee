"""How a request's call to a flow turns Temporal's failures into problems: a query the worker could not answer just
now is a 503 with Retry-After (asked again, it is answered), never a 500."""

from __future__ import annotations

import uuid

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from api.errors import Problem
from api.services.temporal_calls import workflow_call


@workflow.defn(name="TemporalCallsProbe")
class ProbeWorkflow:
    def __init__(self) -> None:
        self._fail = True

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.query
    def answer(self) -> str:
        if self._fail:
            self._fail = False
            raise RuntimeError("not now")
        return "ok"


async def test_a_query_that_failed_for_now_is_a_503_to_ask_again(client: Client) -> None:
    queue = f"calls-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[ProbeWorkflow], workflow_runner=UnsandboxedWorkflowRunner()):
        handle = await client.start_workflow(ProbeWorkflow.run, id=f"probe-{uuid.uuid4().hex[:8]}", task_queue=queue)
        try:
            with pytest.raises(Problem) as busy:
                await workflow_call(handle.query(ProbeWorkflow.answer))
            assert (busy.value.status, busy.value.code) == (503, "SERVICE_UNAVAILABLE")
            assert busy.value.headers == {"Retry-After": "1"}
            assert await workflow_call(handle.query(ProbeWorkflow.answer)) == "ok"
        finally:
            await handle.terminate("test over")

"""Talking to workflows from a request: updates, queries and signals with their failures turned into problems.

A validator or handler refusal arrives as an `ApplicationError` whose `type` is our stable code; it becomes a 409
(403 for FORBIDDEN) with the workflow's zh-CN message. A workflow that does not exist is a 404. A query the worker
could not answer just now (the flow's task failing for a moment, e.g. while a restarted worker replays it) is a 503
with `Retry-After`: the flow itself is intact and answers again shortly.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import Problem
from api.resilience import unavailable

T = TypeVar("T")

_STATUS_FOR = {"FORBIDDEN": 403, "NOT_FOUND": 404}


def refusal_problem(error: ApplicationError) -> Problem:
    code = error.type or "CONFLICT"
    return Problem(_STATUS_FOR.get(code, 409), code, "操作未被接受", error.message)


async def workflow_call(call: Awaitable[T], *, missing: str = "记录不存在") -> T:
    try:
        return await call
    except WorkflowUpdateFailedError as failure:
        cause: BaseException | None = failure.cause
        while cause is not None and not isinstance(cause, ApplicationError):
            cause = cause.__cause__
        if isinstance(cause, ApplicationError):
            raise refusal_problem(cause) from failure
        raise
    except WorkflowQueryFailedError as failure:
        raise unavailable(1) from failure
    except RPCError as failure:
        if failure.status is RPCStatusCode.NOT_FOUND:
            raise Problem(404, "NOT_FOUND", "未找到", missing) from failure
        if failure.status is RPCStatusCode.FAILED_PRECONDITION:
            # The flow already closed: nothing more can be done to it.
            raise Problem(409, "FLOW_CLOSED", "流程已结束", "该业务流程已结束，不能再操作") from failure
        raise

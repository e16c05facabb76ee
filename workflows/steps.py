"""How workflows run their steps: timeouts and retry policies in one place, and where each kind of step runs.

DB-only steps run as local activities (one round trip fewer). Steps that call outside systems run as regular
activities on the integration queue, named after the workflow's own queue so tests with private queues stay apart.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.notices import NoticeActivities
    from models.common import HOSPITAL_TZ
    from models.notify import Notice

DB_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))
INTEGRATION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=2)
)


def integration_queue() -> str:
    return f"{workflow.info().task_queue}-integrations"


async def db(method: Callable[..., Any], *args: Any) -> Any:
    return await workflow.execute_local_activity_method(
        method, args=list(args), start_to_close_timeout=timedelta(seconds=15), retry_policy=DB_RETRY
    )


async def call(method: Callable[..., Any], *args: Any) -> Any:
    return await workflow.execute_activity_method(
        method,
        args=list(args),
        task_queue=integration_queue(),
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=INTEGRATION_RETRY,
    )


class Notices:
    """Notices go out beside the flow, not in its way: each starts at once and the flow moves on; the flow waits
    for all of them only before it ends (`flush`), so none is lost. Keys derive from the workflow id, so a replayed
    or retried step sends each notice once."""

    def __init__(self) -> None:
        self._pending: list[Any] = []

    def send(self, key: str, user_ref: str, template: str, **params: str) -> None:
        self.send_once(f"{workflow.info().workflow_id}:{key}", user_ref, template, **params)

    def send_once(self, key: str, user_ref: str, template: str, **params: str) -> None:
        """A notice that several executions may reach, each with its own workflow id (a Schedule's runs): `key`
        alone names it, so whichever run gets there first sends it and the others find it sent."""
        self._pending.append(
            workflow.start_activity_method(
                NoticeActivities.send_notice,
                Notice(key=key, user_ref=user_ref, template=template, params=params),
                task_queue=integration_queue(),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=INTEGRATION_RETRY,
            )
        )

    async def flush(self) -> None:
        while self._pending:
            await self._pending.pop(0)


def local(moment: datetime, pattern: str = "%m-%d %H:%M") -> str:
    return moment.astimezone(HOSPITAL_TZ).strftime(pattern)


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def refusal(failure: FailureError, fallback_code: str, fallback: str) -> ApplicationError:
    """The business refusal behind a failed step, with the step's own code and message. A local activity's
    refusal arrives as the `ApplicationError` itself, a regular activity's wrapped in an `ActivityError`."""
    cause = failure if isinstance(failure, ApplicationError) else failure.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return ApplicationError(cause.message, type=cause.type)
    return ApplicationError(fallback, type=fallback_code)

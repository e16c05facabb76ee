"""How activities turn adapter outcomes into Temporal failures.

Business refusals become non-retryable `ApplicationError`s with a stable `type`, so the workflow can branch on them;
everything else propagates and Temporal retries it with the activity's retry policy.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from temporalio.exceptions import ApplicationError

from activities.adapters.errors import AdapterRefusal

T = TypeVar("T")


async def refusals_are_final(call: Awaitable[T]) -> T:
    try:
        return await call
    except AdapterRefusal as refusal:
        raise ApplicationError(refusal.message, type=refusal.code, non_retryable=True) from refusal


def business_error(code: str, message: str) -> ApplicationError:
    return ApplicationError(message, type=code, non_retryable=True)

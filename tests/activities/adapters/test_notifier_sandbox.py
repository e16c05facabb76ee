from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlmodel import col

from activities.adapters.errors import AdapterError
from activities.adapters.notifier.contract import NotifierContract
from activities.adapters.notifier.sandbox import SandboxNotifier
from activities.adapters.sandbox import injected_failure
from models.common import Channel
from models.tables.sandbox import SandboxCall


@pytest.fixture
def adapter(sessions, settings) -> SandboxNotifier:  # type: ignore[no-untyped-def]
    return SandboxNotifier(sessions, settings)


@pytest.fixture
def simulator(adapter: SandboxNotifier) -> SandboxNotifier:
    return adapter


class TestSandboxNotifier(NotifierContract):
    pass


async def test_phone_is_recorded_masked(adapter: SandboxNotifier, sessions) -> None:  # type: ignore[no-untyped-def]
    k = f"key-{uuid.uuid4().hex}"
    await adapter.send(
        idempotency_key=k, channel=Channel.SMS, phone="13800138000", user_id="u1", title="提醒", body="您的处方已发货"
    )
    async with sessions() as session:
        row = (await session.scalars(select(SandboxCall).where(col(SandboxCall.idempotency_key) == k))).one()
    assert row.request["phone"] == "138****8000"


async def test_injected_failures_end_in_one_delivery(sessions, settings) -> None:  # type: ignore[no-untyped-def]
    flaky = SandboxNotifier(sessions, settings.model_copy(update={"sandbox_failure_rate": 0.6}))
    user = f"u-{uuid.uuid4().hex[:12]}"
    # Keys the documented formula says fail on their first attempt, so the retry path is surely exercised.
    keys = [k for k in (f"key-{user}-{n}" for n in range(50)) if injected_failure("notifier", "send", k, 0, 0.6)][:4]
    sent, failures = [], 0
    for k in keys:
        while True:  # what Temporal's retry policy does for the activity
            try:
                sent.append(
                    await flaky.send(
                        idempotency_key=k, channel=Channel.APP, phone=None, user_id=user, title="t", body="正文"
                    )
                )
                break
            except AdapterError:
                failures += 1
    assert failures >= len(keys) == 4
    assert await flaky.delivered(user) == sent

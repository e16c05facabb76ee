from __future__ import annotations

import uuid

import pytest

from activities.adapters.mailer.contract import MailerContract
from activities.adapters.mailer.sandbox import SandboxMailer


@pytest.fixture
def adapter(sessions, settings) -> SandboxMailer:  # type: ignore[no-untyped-def]
    return SandboxMailer(sessions, settings)


@pytest.fixture
def simulator(adapter: SandboxMailer) -> SandboxMailer:
    return adapter


class TestSandboxMailer(MailerContract):
    pass


async def test_the_address_is_recorded_masked(adapter: SandboxMailer) -> None:
    to = f"Caiwu-{uuid.uuid4().hex[:8]}@Hospital.Example"
    await adapter.send(
        idempotency_key=f"key-{uuid.uuid4().hex}", to=to, subject="【对账结果】", text="正文", html="<p>正文</p>"
    )
    # Found by the address in any case, kept only masked.
    (mail,) = await adapter.outbox(to.lower())
    assert mail["request"]["to"] == "C***@Hospital.Example"
    assert (mail["request"]["subject"], mail["request"]["text"], mail["request"]["html"]) == (
        "【对账结果】",
        "正文",
        "<p>正文</p>",
    )

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlmodel import col

from activities.adapters.liveness.contract import LivenessContract
from activities.adapters.liveness.sandbox import OTHER_FACE, PASS, SPOOF, SandboxLiveness
from models import idcard
from models.tables.sandbox import SandboxCall


class Tokens:
    async def live_token(self) -> str:
        return f"{PASS}{uuid.uuid4().hex}"

    async def spoofed_token(self) -> str:
        return f"{SPOOF}{uuid.uuid4().hex}"

    async def other_face_token(self) -> str:
        return f"{OTHER_FACE}{uuid.uuid4().hex}"


@pytest.fixture
def adapter(sessions, settings) -> SandboxLiveness:  # type: ignore[no-untyped-def]
    return SandboxLiveness(sessions, settings)


@pytest.fixture
def simulator() -> Tokens:
    return Tokens()


class TestSandboxLiveness(LivenessContract):
    pass


async def test_record_keeps_digests_only(adapter: SandboxLiveness, sessions) -> None:  # type: ignore[no-untyped-def]
    number, key, token = idcard.random_valid(), uuid.uuid4().hex, f"{PASS}{uuid.uuid4().hex}"
    await adapter.verify(idempotency_key=key, name="王小明", id_card_no=number, token=token)
    async with sessions() as session:
        row = (await session.scalars(select(SandboxCall).where(col(SandboxCall.idempotency_key) == key))).one()
    stored = str(row.request) + str(row.response)
    assert number not in stored and "王小明" not in stored and token not in stored

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlmodel import col

from activities.adapters.realname.contract import RealNameContract
from activities.adapters.realname.sandbox import SandboxRealName
from models import idcard
from models.tables.sandbox import SandboxCall


class Identities:
    """The contract's simulator for the sandbox: fresh valid numbers, refused ones put on the deny set."""

    def __init__(self, adapter: SandboxRealName) -> None:
        self.adapter = adapter

    async def matching_identity(self) -> tuple[str, str, str]:
        return "王小明", idcard.random_valid(), "13912345678"

    async def refused_identity(self) -> tuple[str, str, str]:
        number = idcard.random_valid()
        self.adapter.deny(number)
        return "王小明", number, "13912345678"


@pytest.fixture
def adapter(sessions, settings) -> SandboxRealName:  # type: ignore[no-untyped-def]
    return SandboxRealName(sessions, settings)


@pytest.fixture
def simulator(adapter: SandboxRealName) -> Identities:
    return Identities(adapter)


class TestSandboxRealName(RealNameContract):
    pass


def key() -> str:
    return f"key-{uuid.uuid4().hex}"


def test_gb11643_check_character() -> None:
    # The standard's own examples, the lower-case x accepted, and a wrong check digit or impossible date refused.
    for good in ("11010519491231002X", "440524188001010014", "11010519491231002x", " 440524 188001010014 "):
        assert idcard.is_valid(good), good
    for bad in ("110105194912310021", "440524188002300012", "4405241880010100", "44052418800101001４"):
        assert not idcard.is_valid(bad), bad
    assert idcard.is_valid(idcard.make(sequence=7))


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("张三", True),
        ("阿依古丽·买买提", True),
        ("𠀀明", True),  # extension B ideograph
        ("张", False),
        ("张" * 21, False),
        ("·张三", False),
        ("张三·", False),
        ("Zhang San", False),
        ("张 三", False),
    ],
)
async def test_name_rules(adapter: SandboxRealName, name: str, ok: bool) -> None:
    result = await adapter.verify(
        idempotency_key=key(), name=name, id_card_no=idcard.random_valid(), phone="13812345678"
    )
    assert result.matched is ok
    assert (result.reason is None) is ok


@pytest.mark.parametrize("phone", ["１３８１２３４５６７８", "138123456789", "+8613812345678", "13812345678 "])
async def test_phone_must_be_eleven_ascii_digits(adapter: SandboxRealName, phone: str) -> None:
    result = await adapter.verify(idempotency_key=key(), name="张三", id_card_no=idcard.random_valid(), phone=phone)
    assert not result.matched and result.reason == "手机号码格式不正确"


async def test_same_key_keeps_its_answer_after_the_registry_changes(adapter: SandboxRealName) -> None:
    number, k = idcard.random_valid(), key()
    assert (await adapter.verify(idempotency_key=k, name="张三", id_card_no=number, phone="13812345678")).matched
    adapter.deny(number.lower())
    assert (await adapter.verify(idempotency_key=k, name="张三", id_card_no=number, phone="13812345678")).matched
    refused = await adapter.verify(idempotency_key=key(), name="张三", id_card_no=number, phone="13812345678")
    assert not refused.matched and refused.reason == "姓名与身份证号码不一致，实名认证未通过"


async def test_record_holds_no_pii_in_clear(adapter: SandboxRealName, sessions) -> None:  # type: ignore[no-untyped-def]
    number, k = idcard.random_valid(), key()
    await adapter.verify(idempotency_key=k, name="张三", id_card_no=number, phone="13812345678")
    async with sessions() as session:
        row = (await session.scalars(select(SandboxCall).where(col(SandboxCall.idempotency_key) == k))).one()
    stored = str(row.request) + str(row.response)
    assert number not in stored and "张三" not in stored and "13812345678" not in stored

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from activities.adapters.errors import AdapterRefusal, InvalidCallback
from activities.adapters.payment.contract import PaymentChannelContract
from activities.adapters.payment.sandbox import SandboxPayment
from models.billing import ChannelOrderStatus
from models.tables.sandbox import SandboxCall, SandboxPayOrder, SandboxRefund


@pytest.fixture
def adapter(sessions, settings) -> SandboxPayment:  # type: ignore[no-untyped-def]
    return SandboxPayment(sessions, settings)


@pytest.fixture
def simulator(adapter: SandboxPayment) -> SandboxPayment:
    return adapter


class TestSandboxPayment(PaymentChannelContract):
    pass


def ids() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:16]
    return f"sb-{tag}", f"key-{tag}"


def later() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=15)


async def new_order(adapter: SandboxPayment, amount_fen: int = 10_000) -> str:
    out_trade_no, key = ids()
    await adapter.create_order(
        idempotency_key=key, out_trade_no=out_trade_no, amount_fen=amount_fen, description="处方费", expires_at=later()
    )
    return out_trade_no


async def test_pay_url_points_at_the_sandbox_cashier(adapter: SandboxPayment, settings) -> None:  # type: ignore[no-untyped-def]
    out_trade_no = await new_order(adapter)
    order = await adapter.query_order(out_trade_no=out_trade_no)
    assert order.pay_url == f"{settings.api_base_url}/api/v1/sandbox/cashier/{out_trade_no}"


async def test_twenty_concurrent_creates_with_one_key_make_one_order(adapter: SandboxPayment, sessions) -> None:  # type: ignore[no-untyped-def]
    out_trade_no, key = ids()
    orders = await asyncio.gather(
        *(
            adapter.create_order(
                idempotency_key=key, out_trade_no=out_trade_no, amount_fen=500, description="挂号费", expires_at=later()
            )
            for _ in range(20)
        )
    )
    assert {o.prepay_id for o in orders} == {orders[0].prepay_id}
    async with sessions() as session:
        calls = (
            await session.scalars(
                select(SandboxCall).where(col(SandboxCall.system) == "payment", col(SandboxCall.idempotency_key) == key)
            )
        ).all()
        order_rows = await session.scalar(
            select(func.count()).select_from(SandboxPayOrder).where(col(SandboxPayOrder.out_trade_no) == out_trade_no)
        )
    assert [c.received for c in calls] == [20]
    assert order_rows == 1


async def test_same_order_number_with_another_amount_is_refused(adapter: SandboxPayment) -> None:
    out_trade_no = await new_order(adapter, 100)
    with pytest.raises(AdapterRefusal) as refused:
        await adapter.create_order(
            idempotency_key=f"other-{uuid.uuid4().hex}",
            out_trade_no=out_trade_no,
            amount_fen=200,
            description="挂号费",
            expires_at=later(),
        )
    assert refused.value.code == "OUT_TRADE_NO_USED"


async def test_concurrent_payments_charge_once(adapter: SandboxPayment) -> None:
    out_trade_no = await new_order(adapter)
    callbacks = await asyncio.gather(*(adapter.simulate_payment(out_trade_no) for _ in range(10)))
    notices = [adapter.parse_payment_notice(h, b) for h, b in callbacks]
    assert {n.transaction_id for n in notices} == {notices[0].transaction_id}
    assert await adapter.charges(out_trade_no) == 1


async def test_close_racing_payment_is_decided_once(adapter: SandboxPayment) -> None:
    for _ in range(5):
        out_trade_no = await new_order(adapter)
        close, pay = await asyncio.gather(
            adapter.close_order(idempotency_key=f"close-{out_trade_no}", out_trade_no=out_trade_no),
            adapter.simulate_payment(out_trade_no),
            return_exceptions=True,
        )
        charged = await adapter.charges(out_trade_no)
        if isinstance(pay, AdapterRefusal):
            assert pay.code == "ORDER_CLOSED" and charged == 0
            assert close.status == ChannelOrderStatus.CLOSED  # type: ignore[union-attr]
        else:
            assert charged == 1 and close.status == ChannelOrderStatus.SUCCESS  # type: ignore[union-attr]


async def test_concurrent_refunds_never_exceed_the_payment(adapter: SandboxPayment, sessions) -> None:  # type: ignore[no-untyped-def]
    out_trade_no = await new_order(adapter, 10_000)
    await adapter.simulate_payment(out_trade_no)
    results = await asyncio.gather(
        *(
            adapter.refund(
                idempotency_key=f"rk-{out_trade_no}-{n}",
                out_trade_no=out_trade_no,
                out_refund_no=f"rf-{out_trade_no}-{n}",
                amount_fen=3_000,
                reason="部分退款",
            )
            for n in range(10)
        ),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, AdapterRefusal)]
    assert len(refused) == 7 and {r.code for r in refused} == {"REFUND_EXCEEDS_PAID"}
    async with sessions() as session:
        total = await session.scalar(
            select(func.sum(SandboxRefund.amount_fen)).where(col(SandboxRefund.out_trade_no) == out_trade_no)
        )
    assert total == 9_000


async def test_expired_order_cannot_be_paid(adapter: SandboxPayment) -> None:
    out_trade_no, key = ids()
    await adapter.create_order(
        idempotency_key=key,
        out_trade_no=out_trade_no,
        amount_fen=100,
        description="挂号费",
        expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    with pytest.raises(AdapterRefusal) as refused:
        await adapter.simulate_payment(out_trade_no)
    assert refused.value.code == "ORDER_EXPIRED"
    assert await adapter.charges(out_trade_no) == 0


async def test_unknown_orders_and_refunds_are_refused(adapter: SandboxPayment) -> None:
    with pytest.raises(AdapterRefusal):
        await adapter.query_order(out_trade_no="nope-" + uuid.uuid4().hex)
    with pytest.raises(AdapterRefusal):
        await adapter.query_refund(out_trade_no="nope-" + uuid.uuid4().hex, out_refund_no="nope-" + uuid.uuid4().hex)
    with pytest.raises(AdapterRefusal):
        await adapter.simulate_payment("nope-" + uuid.uuid4().hex)


async def test_callback_from_another_secret_is_refused(adapter: SandboxPayment, sessions, settings) -> None:  # type: ignore[no-untyped-def]
    impostor = SandboxPayment(sessions, settings.model_copy(update={"sandbox_notify_secret": "guessed"}))
    out_trade_no = await new_order(adapter)
    headers, body = await impostor.simulate_payment(out_trade_no)
    with pytest.raises(InvalidCallback):
        adapter.parse_payment_notice(headers, body)
    with pytest.raises(InvalidCallback):  # signed correctly but not a payment notice
        from activities.adapters.sandbox import sign_callback

        junk = b'{"hello": "world"}'
        adapter.parse_payment_notice(sign_callback(settings.sandbox_notify_secret, junk), junk)

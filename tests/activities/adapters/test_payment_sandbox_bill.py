"""The sandbox channel's daily statement: its own paid orders and refunds of one Beijing-time day."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from activities.adapters.payment.sandbox import SandboxPayment
from activities.adapters.payment.statement import StatementChannel, StatementNotReady
from models.billing import ChannelBillLineKind
from models.common import HOSPITAL_TZ
from models.tables.sandbox import SandboxPayOrder, SandboxRefund


@pytest.fixture
def adapter(sessions, settings) -> SandboxPayment:  # type: ignore[no-untyped-def]
    return SandboxPayment(sessions, settings)


def beijing(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=HOSPITAL_TZ).astimezone(UTC)


async def test_lines_of_one_day_with_refunds(adapter: SandboxPayment, sessions) -> None:
    day = date(2024, 2, 29)
    tag = uuid.uuid4().hex[:10]
    paid = {
        f"in-{tag}": beijing(day, 0, 0, 0),
        f"last-{tag}": beijing(day, 23, 59, 59),
        f"after-{tag}": beijing(day + timedelta(days=1), 0, 0, 0),
        f"before-{tag}": beijing(day - timedelta(days=1), 23, 59, 59),
    }
    async with sessions() as session, session.begin():
        for number, paid_at in paid.items():
            session.add(
                SandboxPayOrder(
                    out_trade_no=number, amount_fen=10_000, status="SUCCESS", transaction_id=f"TX{number}",
                    charges=1, paid_at=paid_at,
                )
            )  # fmt: skip
        session.add(SandboxPayOrder(out_trade_no=f"unpaid-{tag}", amount_fen=500, status="NOTPAY"))
        await session.flush()
        session.add(
            SandboxRefund(
                out_refund_no=f"r-{tag}", out_trade_no=f"before-{tag}", amount_fen=2500, status="succeeded",
                refund_id=f"RF{tag}", created_at=beijing(day, 12),
            )
        )  # fmt: skip

    lines = [line for line in await adapter.download_bill(bill_date=day) if line.out_trade_no.endswith(tag)]

    assert [(line.kind, line.out_trade_no, line.status) for line in lines] == [
        (ChannelBillLineKind.PAYMENT, f"in-{tag}", "SUCCESS"),
        (ChannelBillLineKind.PAYMENT, f"last-{tag}", "SUCCESS"),
        (ChannelBillLineKind.REFUND, f"before-{tag}", "REFUND"),
    ]
    refund = lines[2]
    assert (refund.amount_fen, refund.out_refund_no, refund.refund_id, refund.transaction_id) == (
        2500,
        f"r-{tag}",
        f"RF{tag}",
        f"TXbefore-{tag}",
    )
    assert lines[1].occurred_at == beijing(day, 23, 59, 59)


async def test_today_is_not_ready(adapter: SandboxPayment) -> None:
    assert isinstance(adapter, StatementChannel)
    today = datetime.now(HOSPITAL_TZ).date()
    with pytest.raises(StatementNotReady):
        await adapter.download_bill(bill_date=today)

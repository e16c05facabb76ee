"""Reconciliation against the real database: statement download (a statement per run, repeated numbers flagged), the
set-wise match with every outcome (the 23:59:59 boundary, a payment across midnight, partial refunds) storing the
differences only with their sources, campuses, resolutions, open bad debts, and 医保 3201/3202.

Each test reconciles a channel name of its own, so the shared database's other bills never enter its day.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio.exceptions import ApplicationError

from activities.adapters.errors import AdapterRefusal
from activities.adapters.insurance.sandbox import ADMDVS, SandboxInsurance
from activities.adapters.payment.statement import StatementNotReady
from activities.insurance_book import BookedSettlement, NoInsuranceSettlements
from activities.reconciliation import STATEMENT_NOT_READY, ReconciliationActivities
from core.reconciliation import ReconciliationPolicy, campus_channel
from core.settings import Settings
from models.billing import ChannelBillLine, ChannelBillLineKind
from models.common import HOSPITAL_TZ, Role
from models.insurance import (
    DailyCheckDetailQuery,
    DailyCheckDetailResult,
    DailyCheckLine,
    DailyCheckLineResult,
    DailyCheckOutcome,
    DailyCheckQuery,
    DailyCheckResult,
)
from models.reconciliation import (
    FinishRun,
    InsuranceCheckRequest,
    InsuranceGroup,
    OpenRun,
    RecordResolution,
    Resolution,
    RunStatus,
    StatementRequest,
)
from models.tables import Bill, ChannelStatement, ChannelStatementLine, ReconciliationItem, ReconciliationRun, Refund
from tests.api.helpers import make_user

DAY = date(2025, 3, 10)
PAYMENT = ChannelBillLineKind.PAYMENT
REFUND = ChannelBillLineKind.REFUND


def at(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    """A Beijing wall-clock time, as the aware UTC instant the database stores."""
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=HOSPITAL_TZ).astimezone(UTC)


NEXT = DAY + timedelta(days=1)


class ListedChannel:
    """A payment channel whose statement is whatever the test lists (or a failure it raises)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[ChannelBillLine] = []
        self.failure: Exception | None = None

    async def download_bill(self, *, bill_date: date) -> list[ChannelBillLine]:
        if self.failure is not None:
            raise self.failure
        return list(self.lines)


class ListedBook:
    def __init__(self, *settled: BookedSettlement) -> None:
        self.settled = list(settled)

    async def settled_on(self, bill_date: date) -> list[BookedSettlement]:
        return list(self.settled)


def pay(out_trade_no: str, amount_fen: int, when: datetime, status: str = "SUCCESS") -> ChannelBillLine:
    return ChannelBillLine(
        kind=PAYMENT, out_trade_no=out_trade_no, transaction_id=f"T{out_trade_no}", amount_fen=amount_fen,
        occurred_at=when, status=status,
    )  # fmt: skip


def refund(
    out_trade_no: str, out_refund_no: str | None, amount_fen: int, when: datetime, status: str = "REFUND"
) -> ChannelBillLine:
    return ChannelBillLine(
        kind=REFUND, out_trade_no=out_trade_no, transaction_id=f"T{out_trade_no}", amount_fen=amount_fen,
        occurred_at=when, out_refund_no=out_refund_no, refund_id=f"R{out_refund_no}", status=status,
    )  # fmt: skip


class Books:
    """The platform's side: bills and refunds of one test."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], patient_id: str, channel: str, tag: str) -> None:
        self.sessions = sessions
        self.patient_id = patient_id
        self.channel = channel
        self.tag = tag

    def id(self, name: str) -> str:
        return f"{name}-{self.tag}"

    async def bill(
        self,
        name: str,
        amount_fen: int,
        paid_at: datetime | None,
        status: str = "paid",
        channel: str | None = None,
        campus: str | None = None,
    ) -> str:
        bill_id = self.id(name)
        async with self.sessions() as session, session.begin():
            session.add(
                Bill(
                    id=bill_id, kind="registration", ref_id=bill_id, patient_id=self.patient_id,
                    amount_fen=amount_fen, status=status, channel=channel or self.channel, paid_at=paid_at,
                    campus=campus,
                )
            )  # fmt: skip
        return bill_id

    async def refund(self, name: str, bill_id: str, amount_fen: int, finished_at: datetime | None, status: str) -> str:
        refund_id = self.id(name)
        async with self.sessions() as session, session.begin():
            session.add(
                Refund(
                    id=refund_id, bill_id=bill_id, amount_fen=amount_fen, reason="测试", requested_by="u-test",
                    status=status, finished_at=finished_at,
                )
            )  # fmt: skip
        return refund_id


@pytest.fixture
async def books(sessions: async_sessionmaker[AsyncSession], uid: str) -> Books:
    _, patient_id = await make_user(sessions, Role.PATIENT)
    assert patient_id is not None
    return Books(sessions, patient_id, f"t{uid}", uid)


@pytest.fixture
def channel(books: Books) -> ListedChannel:
    return ListedChannel(books.channel)


def activities_for(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *channels: ListedChannel,
    book=None,
    policy: ReconciliationPolicy = ReconciliationPolicy(),
) -> ReconciliationActivities:
    return ReconciliationActivities(
        sessions,
        {c.name: c for c in channels},
        SandboxInsurance(sessions, settings),
        book or NoInsuranceSettlements(),
        [InsuranceGroup(insutype="310", clr_type="11", setl_optins=ADMDVS)],
        policy,
    )


async def open_run(
    acts: ReconciliationActivities, channel: str, day: date = DAY, round_: int = 1, campus: str | None = None
) -> str:
    return await acts.open_run(
        OpenRun(
            channel=channel,
            bill_date=day,
            workflow_id=f"reconcile-{channel}",
            workflow_run_id=f"{channel}-{campus}",
            round=round_,
            campus=campus,
        )
    )


async def items_of(sessions: async_sessionmaker[AsyncSession], run_id: str) -> list[ReconciliationItem]:
    async with sessions() as session:
        rows = await session.execute(select(ReconciliationItem).where(col(ReconciliationItem.run_id) == run_id))
        return list(rows.scalars())


async def run_row(sessions: async_sessionmaker[AsyncSession], run_id: str) -> ReconciliationRun:
    async with sessions() as session:
        run = await session.get(ReconciliationRun, run_id)
    assert run is not None
    return run


async def test_every_outcome_with_the_day_boundary_and_partial_refunds(sessions, settings, books, channel) -> None:
    b = books
    matched = await b.bill("matched", 5000, at(DAY, 10))
    last_second = await b.bill("last-second", 3000, at(DAY, 23, 59, 59))
    next_day = await b.bill("next-day", 2000, at(NEXT, 0, 0, 0))  # the next day's: not in this day at all
    across_midnight = await b.bill("across", 4500, at(NEXT, 0, 0, 1))
    partial = await b.bill("partial", 10_000, at(DAY, 9))
    partial_refund = await b.refund("partial-r", partial, 3000, at(DAY, 15), "succeeded")
    refund_differs = await b.bill("refund-differs", 8000, at(DAY, 8))
    refund_short = await b.refund("refund-differs-r", refund_differs, 2500, at(DAY, 16), "succeeded")
    amount_differs = await b.bill("amount", 6000, at(DAY, 11))
    platform_only = await b.bill("platform-only", 4000, at(DAY, 12))
    unpaid = await b.bill("unpaid", 7000, None, status="open")  # the paid callback never arrived
    earlier = await b.bill("earlier", 9000, at(DAY - timedelta(days=3), 10))
    processing = await b.refund("processing-r", earlier, 9000, None, "processing")
    refund_pending_at_channel = await b.refund("pending-r", earlier, 100, at(DAY, 17), "succeeded")
    await b.bill("other-channel", 1500, at(DAY, 10), channel=f"x{b.tag}")
    ghost = b.id("ghost")

    channel.lines = [
        pay(matched, 5000, at(DAY, 10)),
        pay(last_second, 3000, at(DAY, 23, 59, 59)),
        pay(across_midnight, 4500, at(DAY, 23, 59, 58)),
        pay(partial, 10_000, at(DAY, 9)),
        refund(partial, partial_refund, 3000, at(DAY, 15)),
        pay(refund_differs, 8000, at(DAY, 8)),
        refund(refund_differs, refund_short, 3000, at(DAY, 16)),
        pay(amount_differs, 6600, at(DAY, 11)),
        pay(ghost, 1200, at(DAY, 13)),
        pay(unpaid, 7000, at(DAY, 14)),
        refund(earlier, processing, 9000, at(DAY, 18)),
        refund(earlier, refund_pending_at_channel, 100, at(DAY, 17), status="REFUND_PROCESSING"),
        refund(earlier, None, 50, at(DAY, 19)),
    ]
    acts = activities_for(sessions, settings, channel)
    run_id = await open_run(acts, channel.name)
    statement = await acts.download_statement(StatementRequest(run_id=run_id, channel=channel.name, bill_date=DAY))
    assert statement.line_count == 13
    # Totals count the lines whose money moved only (not the refund still processing at the channel).
    assert statement.payment_total_fen == 5000 + 3000 + 4500 + 10_000 + 8000 + 6600 + 1200 + 7000
    assert statement.refund_total_fen == 3000 + 3000 + 9000 + 50

    summary = await acts.match_statement(run_id)

    # Differences only, each naming its source: the statement line and the platform's bill or refund.
    items = await items_of(sessions, run_id)
    found = {
        (i.kind, i.out_trade_no, i.out_refund_no): (i.outcome, i.line_no, i.platform_record_id, i.shortfall_fen)
        for i in items
    }
    assert found == {
        ("payment", across_midnight, None): ("channel_only", 3, across_midnight, 0),
        ("refund", refund_differs, refund_short): ("amount_mismatch", 7, refund_short, 500),  # refunded 5.00 too much
        ("payment", amount_differs, None): ("amount_mismatch", 8, amount_differs, 0),  # the channel got more
        ("payment", ghost, None): ("channel_only", 9, None, 0),
        ("payment", platform_only, None): ("platform_only", None, platform_only, 4000),  # never collected
        ("payment", unpaid, None): ("status_mismatch", 10, unpaid, 0),
        ("refund", earlier, processing): ("status_mismatch", 11, processing, 9000),  # paid out, not booked as done
        ("refund", earlier, refund_pending_at_channel): ("status_mismatch", 12, refund_pending_at_channel, 0),
        ("refund", earlier, None): ("channel_only", 13, None, 50),
    }
    assert next_day not in {i.out_trade_no for i in items}
    by_no = {(i.kind, i.out_trade_no, i.out_refund_no): i for i in items}
    crossing = by_no[("payment", across_midnight, None)]
    # The platform's record across midnight is shown, so finance can see it is a timing difference.
    assert (crossing.platform_status, crossing.platform_occurred_at) == ("paid", at(NEXT, 0, 0, 1))
    assert crossing.platform_amount_fen is None and crossing.channel_amount_fen == 4500
    assert (crossing.transaction_id, crossing.channel_status) == (f"T{across_midnight}", "SUCCESS")
    assert by_no[("payment", unpaid, None)].platform_status == "open"
    short = by_no[("refund", refund_differs, refund_short)]
    assert (short.channel_amount_fen, short.platform_amount_fen) == (3000, 2500)
    assert {(i.resolution_state, i.line_count) for i in items} == {("open", 1), ("open", 0)}

    # Agreeing numbers are counted and totalled on the run, never stored.
    assert (summary.matched, summary.matched_payment_fen, summary.matched_refund_fen) == (5, 26_000, 3000)
    assert (summary.channel_only, summary.platform_only) == (3, 1)
    assert (summary.amount_mismatch, summary.status_mismatch) == (2, 3)
    assert sorted(summary.open_item_ids) == sorted(i.id or 0 for i in items)
    assert summary.platform_payment_fen == 5000 + 3000 + 10_000 + 8000 + 6000 + 4000
    assert summary.platform_refund_fen == 3000 + 2500 + 100
    assert summary.channel_payment_fen == statement.payment_total_fen
    run = await run_row(sessions, run_id)
    assert (run.status, run.open_count, run.statement_id) == ("awaiting_resolution", 9, run_id)
    assert statement.statement_id == run_id

    # Matching again (an activity retried after its answer was lost) writes nothing twice.
    again = await acts.match_statement(run_id)
    assert again == summary
    assert len(await items_of(sessions, run_id)) == len(items)


async def test_a_number_on_several_lines_is_matched_as_one(sessions, settings, books, channel) -> None:
    twice = await books.bill("twice", 5000, at(DAY, 10))  # the channel charged it twice
    split = await books.bill("split", 3000, at(DAY, 11))  # listed in two parts that add up
    single = await books.bill("single", 2000, at(DAY, 12))
    channel.lines = [
        pay(twice, 5000, at(DAY, 10)),
        pay(split, 1000, at(DAY, 11)),
        pay(single, 2000, at(DAY, 12)),
        pay(twice, 5000, at(DAY, 10, 1)),
        pay(split, 2000, at(DAY, 11, 1)),
    ]
    acts = activities_for(sessions, settings, channel)
    run_id = await open_run(acts, channel.name)
    await acts.download_statement(StatementRequest(run_id=run_id, channel=channel.name, bill_date=DAY))
    async with sessions() as session:
        flagged = (
            await session.execute(
                select(col(ChannelStatementLine.line_no), col(ChannelStatementLine.repeated))
                .where(col(ChannelStatementLine.statement_id) == run_id)
                .order_by(col(ChannelStatementLine.line_no))
            )
        ).all()
    assert [tuple(row) for row in flagged] == [(1, True), (2, True), (3, False), (4, True), (5, True)]

    summary = await acts.match_statement(run_id)
    (double,) = await items_of(sessions, run_id)
    assert (double.out_trade_no, double.outcome, double.line_count, double.line_no) == (twice, "amount_mismatch", 2, 1)
    assert (double.channel_amount_fen, double.platform_amount_fen, double.shortfall_fen) == (10_000, 5000, 0)
    assert (summary.matched, summary.matched_payment_fen) == (2, 5000)


async def test_each_campus_is_matched_against_its_own_bills(sessions, settings, books) -> None:
    east, west = ListedChannel(books.channel), ListedChannel(books.channel)
    east_bill = await books.bill("east", 1000, at(DAY, 9), campus="east")
    main_bill = await books.bill("unnamed", 2000, at(DAY, 10))  # names no campus: the main campus's (east)
    west_bill = await books.bill("west", 3000, at(DAY, 11), campus="west")
    east.lines = [pay(east_bill, 1000, at(DAY, 9)), pay(main_bill, 2000, at(DAY, 10))]
    west.lines = [pay(west_bill, 3000, at(DAY, 11))]
    acts = ReconciliationActivities(
        sessions,
        {campus_channel(books.channel, "east"): east, campus_channel(books.channel, "west"): west},
        SandboxInsurance(sessions, settings),
        NoInsuranceSettlements(),
        [],
        ReconciliationPolicy(main_campus="east"),
    )
    summaries = {}
    for campus in ("east", "west"):
        run_id = await open_run(acts, books.channel, campus=campus)
        assert run_id == f"{books.channel}-{campus}-20250310-1"
        request = StatementRequest(run_id=run_id, channel=books.channel, bill_date=DAY, campus=campus)
        await acts.download_statement(request)
        summaries[campus] = await acts.match_statement(run_id)
        assert (await run_row(sessions, run_id)).campus == campus
    assert {c: (s.matched, s.mismatches, s.platform_payment_fen) for c, s in summaries.items()} == {
        "east": (2, 0, 3000),
        "west": (1, 0, 3000),
    }
    # A campus whose merchant is not configured cannot be reconciled.
    with pytest.raises(ApplicationError) as raised:
        await acts.download_statement(
            StatementRequest(run_id="none", channel=books.channel, bill_date=DAY, campus="north")
        )
    assert raised.value.type == "CHANNEL_NOT_RECONCILABLE"


async def test_open_shortfalls_of_current_runs_are_the_bad_debts(sessions, settings, books, channel) -> None:
    policy = ReconciliationPolicy(bad_debt_threshold_fen=1000, bad_debt_alert_to=("role:finance", "role:admin"))
    acts = activities_for(sessions, settings, channel, policy=policy)
    before = await acts.bad_debt_exposure()
    await books.bill("lost", 4000, at(DAY, 12))  # 短款: never collected
    channel.lines = [pay(books.id("extra"), 700, at(DAY, 13))]  # 长款: not a debt
    run_id = await open_run(acts, channel.name)
    await acts.download_statement(StatementRequest(run_id=run_id, channel=channel.name, bill_date=DAY))
    summary = await acts.match_statement(run_id)

    exposure = await acts.bad_debt_exposure()
    assert exposure.open_shortfall_fen - before.open_shortfall_fen == 4000
    assert exposure.open_items - before.open_items == 1
    assert (exposure.threshold_fen, exposure.alert, exposure.over) == (1000, ["role:finance", "role:admin"], True)

    lost = next(i for i in await items_of(sessions, run_id) if i.outcome == "platform_only")
    await acts.record_resolution(
        RecordResolution(
            run_id=run_id,
            item_id=lost.id or 0,
            resolution=Resolution.WRITTEN_OFF,
            note="经审批核销",
            resolved_by="u-supervisor",
            resolved_at=datetime(2025, 3, 11, 2, tzinfo=UTC),
        )
    )
    assert (await acts.bad_debt_exposure()).open_shortfall_fen == before.open_shortfall_fen
    assert len(summary.open_item_ids) == 2


async def test_each_run_keeps_the_statement_it_matched(sessions, settings, channel) -> None:
    acts = activities_for(sessions, settings, channel)
    first = await open_run(acts, channel.name)
    request = StatementRequest(run_id=first, channel=channel.name, bill_date=DAY)
    channel.lines = [pay("a", 100, at(DAY, 1)), pay("b", 200, at(DAY, 2))]
    await acts.download_statement(request)
    channel.lines = [pay("c", 300, at(DAY, 3))]
    retried = await acts.download_statement(request)  # the same run's download again: replaced at once
    second = await open_run(acts, channel.name, round_=2)
    channel.lines = [pay("d", 400, at(DAY, 4))]
    rerun = await acts.download_statement(StatementRequest(run_id=second, channel=channel.name, bill_date=DAY))

    assert (retried.statement_id, rerun.statement_id) == (first, second)

    async def lines_of(statement_id: str) -> list[tuple[str, int]]:
        async with sessions() as session:
            rows = await session.execute(
                select(ChannelStatementLine).where(col(ChannelStatementLine.statement_id) == statement_id)
            )
            return [(line.out_trade_no, line.line_no) for line in rows.scalars()]

    assert await lines_of(first) == [("c", 1)]
    assert await lines_of(second) == [("d", 1)]  # the earlier run's lines stay as they were
    async with sessions() as session:
        statement = await session.get(ChannelStatement, first)
    assert statement is not None
    assert (statement.line_count, statement.payment_total_fen, statement.status) == (1, 300, "downloaded")


async def test_a_day_without_trades_is_balanced(sessions, settings, channel) -> None:
    acts = activities_for(sessions, settings, channel)
    run_id = await open_run(acts, channel.name)
    await acts.download_statement(StatementRequest(run_id=run_id, channel=channel.name, bill_date=DAY))
    summary = await acts.match_statement(run_id)
    assert (summary.matched, summary.mismatches, summary.open_item_ids) == (0, 0, [])
    assert (await run_row(sessions, run_id)).status == "balanced"


@pytest.mark.parametrize(
    ("failure", "error_type"),
    [
        (StatementNotReady("账单生成中"), STATEMENT_NOT_READY),
        (AdapterRefusal("BILL_NOT_EXIST", "账单不存在"), STATEMENT_NOT_READY),
        (AdapterRefusal("BILL_UNREADABLE", "账单格式无法识别"), "BILL_UNREADABLE"),
    ],
    ids=["not-ready", "alipay-not-yet", "unreadable"],
)
async def test_download_failures_are_final_for_the_activity(
    sessions, settings, channel, failure: Exception, error_type: str
) -> None:
    acts = activities_for(sessions, settings, channel)
    run_id = await open_run(acts, channel.name)
    channel.failure = failure
    with pytest.raises(ApplicationError) as raised:
        await acts.download_statement(StatementRequest(run_id=run_id, channel=channel.name, bill_date=DAY))
    assert (raised.value.type, raised.value.non_retryable) == (error_type, True)


async def test_an_unknown_channel_is_refused(sessions, settings, channel) -> None:
    acts = activities_for(sessions, settings, channel)
    with pytest.raises(ApplicationError) as raised:
        await acts.download_statement(StatementRequest(run_id="none", channel="nowhere", bill_date=DAY))
    assert raised.value.type == "CHANNEL_NOT_RECONCILABLE"


async def test_runs_open_once_per_round_and_supersede_unfinished_ones(sessions, settings, channel) -> None:
    acts = activities_for(sessions, settings, channel)
    first = await open_run(acts, channel.name)
    assert await open_run(acts, channel.name) == first  # a retried activity
    second = await open_run(acts, channel.name, round_=2)
    assert (first, second) == (f"{channel.name}-20250310-1", f"{channel.name}-20250310-2")
    assert (await run_row(sessions, first)).status == "superseded"
    await acts.finish_run(FinishRun(run_id=second, status=RunStatus.STATEMENT_UNAVAILABLE, note="等待超时"))
    finished = await run_row(sessions, second)
    assert (finished.status, finished.note) == ("statement_unavailable", "等待超时")
    assert finished.finished_at is not None


async def test_a_resolution_is_recorded_once(sessions, settings, books, channel) -> None:
    await books.bill("short", 4000, at(DAY, 12))
    channel.lines = [pay(books.id("long"), 100, at(DAY, 12))]
    acts = activities_for(sessions, settings, channel)
    run_id = await open_run(acts, channel.name)
    await acts.download_statement(StatementRequest(run_id=run_id, channel=channel.name, bill_date=DAY))
    summary = await acts.match_statement(run_id)
    first, second = summary.open_item_ids
    decided = RecordResolution(
        run_id=run_id,
        item_id=first,
        resolution=Resolution.CROSS_DAY,
        note="次日入账",
        resolved_by="u-finance",
        resolved_at=datetime(2025, 3, 11, 2, tzinfo=UTC),
    )

    result = await acts.record_resolution(decided)
    assert (result.open_items, result.resolution) == (1, Resolution.CROSS_DAY)
    assert (await acts.record_resolution(decided)).open_items == 1  # the same decision, retried
    with pytest.raises(ApplicationError) as raised:
        await acts.record_resolution(decided.model_copy(update={"resolved_by": "u-other"}))
    assert raised.value.type == "ITEM_NOT_OPEN"
    with pytest.raises(ApplicationError):
        await acts.record_resolution(decided.model_copy(update={"item_id": second, "run_id": "another-run"}))

    async with sessions() as session:
        item = await session.get(ReconciliationItem, first)
    assert item is not None
    assert (item.resolution_state, item.resolution, item.resolved_by, item.resolution_note) == (
        "resolved",
        "cross_day",
        "u-finance",
        "次日入账",
    )
    assert (await run_row(sessions, run_id)).open_count == 1


def _insurance_check(run_id: str) -> InsuranceCheckRequest:
    return InsuranceCheckRequest(
        run_id=run_id,
        bill_date=DAY,
        idempotency_key=f"test:{uuid.uuid4().hex}",
        requested_at=datetime(2025, 3, 11, 2, tzinfo=UTC),
    )


async def test_insurance_with_nothing_booked_balances_against_the_platform(sessions, settings) -> None:
    # No 医保 settlement table yet: 3201 compares zero with the sandbox platform, which settled nothing that day.
    acts = activities_for(sessions, settings)
    run_id = await open_run(acts, f"i{uuid.uuid4().hex[:12]}")
    summary = await acts.check_insurance(_insurance_check(run_id))
    assert (summary.matched, summary.mismatches) == (0, 0)
    assert (await run_row(sessions, run_id)).status == "balanced"


async def test_insurance_totals_that_differ_are_detailed_by_3202(sessions, settings) -> None:
    group = InsuranceGroup(insutype="310", clr_type="11", setl_optins=ADMDVS)
    ours = DailyCheckLine(setl_id="SETL-ONLY-OURS", mdtrt_id="MD1", psn_no="P1", total_fen=10_000, fund_fen=7000,
                          account_fen=2000)  # fmt: skip
    book = ListedBook(BookedSettlement(group=group, line=ours))
    acts = activities_for(sessions, settings, book=book)
    run_id = await open_run(acts, f"i{uuid.uuid4().hex[:12]}")

    summary = await acts.check_insurance(_insurance_check(run_id))

    items = await items_of(sessions, run_id)
    assert [(i.kind, i.outcome, i.out_trade_no, i.platform_amount_fen, i.shortfall_fen) for i in items] == [
        ("insurance", "platform_only", "SETL-ONLY-OURS", 10_000, 7000 + 2000)  # the fund's and the account's share
    ]
    assert items[0].platform_record_id == "SETL-ONLY-OURS"
    assert (summary.platform_only, summary.open_item_ids) == (1, [items[0].id])
    assert (await acts.check_insurance(_insurance_check(run_id))) == summary  # done once per run


class ScriptedInsurance:
    """The 医保 platform's answers to 3201 and 3202 as a test states them."""

    def __init__(self, balanced: set[str], detail: dict[str, list[DailyCheckLineResult]]) -> None:
        self.balanced = balanced
        self.detail = detail

    async def daily_check(self, *, query: DailyCheckQuery) -> DailyCheckResult:
        ok = query.setl_optins in self.balanced
        return DailyCheckResult(setl_optins=query.setl_optins, balanced=ok, stmt_rslt="0" if ok else "1")

    async def daily_check_detail(
        self, *, idempotency_key: str, requested_at: datetime, query: DailyCheckDetailQuery
    ) -> DailyCheckDetailResult:
        return DailyCheckDetailResult(file_qury_no="F1", lines=self.detail[query.setl_optins])


async def test_insurance_settlements_that_agree_are_counted_not_stored(sessions) -> None:
    def settled(optins: str, setl_id: str, total: int) -> BookedSettlement:
        group = InsuranceGroup(insutype="310", clr_type="11", setl_optins=optins)
        line = DailyCheckLine(setl_id=setl_id, mdtrt_id=f"M{setl_id}", psn_no="P", total_fen=total, fund_fen=total // 2,
                              account_fen=total // 4)  # fmt: skip
        return BookedSettlement(group=group, line=line)

    book = ListedBook(
        settled("A", "a1", 1000), settled("A", "a2", 2000), settled("B", "b1", 3000), settled("B", "b2", 4000)
    )
    platform = ScriptedInsurance(
        balanced={"A"},  # B's totals differ: its settlements are checked one by one
        detail={
            "B": [
                DailyCheckLineResult(setl_id="b1", outcome=DailyCheckOutcome.MATCHED),
                DailyCheckLineResult(setl_id="b2", outcome=DailyCheckOutcome.AMOUNT_MISMATCH, memo="金额不符"),
                DailyCheckLineResult(setl_id="x9", outcome=DailyCheckOutcome.PLATFORM_ONLY, memo="平台有"),
            ]
        },
    )
    acts = ReconciliationActivities(sessions, {}, platform, book, [])  # type: ignore[arg-type]
    run_id = await open_run(acts, f"i{uuid.uuid4().hex[:12]}")

    summary = await acts.check_insurance(_insurance_check(run_id))

    items = await items_of(sessions, run_id)
    assert sorted((i.out_trade_no, i.outcome, i.platform_record_id, i.channel_status) for i in items) == [
        ("b2", "amount_mismatch", "b2", "金额不符"),
        ("x9", "channel_only", None, "平台有"),
    ]
    assert (summary.matched, summary.matched_payment_fen, summary.platform_payment_fen) == (3, 6000, 10_000)
    assert (summary.amount_mismatch, summary.channel_only, len(summary.open_item_ids)) == (1, 1, 2)

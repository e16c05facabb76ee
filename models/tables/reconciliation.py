"""Daily reconciliation (对账): the channels' statements as downloaded, and each run's differences.

A statement holds the normalised lines of one channel's file for one Beijing-time day (of one campus, where the
hospital reconciles per campus), as one run downloaded it: its id is the run's, so every run keeps the very lines it
matched, and a re-run downloads afresh into a statement of its own. A run matches its statement against the
platform's bills and refunds and keeps, for good, one item per difference (长款, 短款, amount or status mismatch),
each naming its source: the statement line (`line_no`) and the platform's bill or refund (`platform_record_id`).
Agreeing numbers are counted and totalled on the run, not stored one by one. A re-run adds a new run and marks the
old one superseded, so what finance resolved stays on record.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, String, Text, UniqueConstraint, false, text
from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


def _fen(*, nullable: bool = False) -> Any:
    # Sums over a day (and duplicated lines) can pass what a 32-bit integer holds.
    default = None if nullable else 0
    return Field(default=default, sa_column=Column(BigInteger, nullable=nullable, default=default))


class ChannelStatement(SQLModel, table=True):
    __tablename__ = "channel_statements"
    __table_args__ = (Index("ix_channel_statements_day", "channel", "bill_date"),)

    id: str = Field(primary_key=True, max_length=60)  # the id of the run that downloaded it
    channel: str = Field(max_length=16)
    campus: str | None = Field(default=None, max_length=16)
    bill_date: date
    downloaded_at: datetime = Timestamp()
    line_count: int = 0
    payment_count: int = 0
    refund_count: int = 0
    # Totals of the lines the channel reports as successful.
    payment_total_fen: int = _fen()
    refund_total_fen: int = _fen()
    fee_total_fen: int = _fen()
    status: str = Field(max_length=16)  # downloaded | reconciled


class ChannelStatementLine(SQLModel, table=True):
    __tablename__ = "channel_statement_lines"
    # A difference names its source line by (statement, line number); the index also serves the statement's scan.
    __table_args__ = (
        UniqueConstraint("statement_id", "line_no", name="channel_statement_line_no"),
        Index("ix_channel_statement_lines_repeated", "statement_id", postgresql_where=text("repeated")),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    statement_id: str = Field(
        sa_column=Column(String(60), ForeignKey("channel_statements.id", ondelete="CASCADE"), nullable=False)
    )
    line_no: int  # 1-based position in the channel's file
    kind: str = Field(max_length=16)  # payment | refund
    out_trade_no: str = Field(max_length=100)
    out_refund_no: str | None = Field(default=None, max_length=100)
    transaction_id: str = Field(max_length=64)
    refund_id: str | None = Field(default=None, max_length=64)
    amount_fen: int = _fen()
    fee_fen: int = _fen()
    occurred_at: datetime = Timestamp()
    status: str = Field(max_length=32)  # the channel's own word
    # Whether that word means the money moved (a paid order, a refund done), decided once at download.
    succeeded: bool
    # Whether another line of the statement carries the same number (out_trade_no of a payment, out_refund_no of a
    # refund), also decided at download: matching folds such lines into one, and leaves every other line as it is.
    repeated: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))


class ReconciliationRun(SQLModel, table=True):
    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        UniqueConstraint("workflow_run_id", "round", name="reconciliation_run_round"),
        Index("ix_reconciliation_runs_day", "channel", "bill_date"),
    )

    id: str = Field(primary_key=True, max_length=60)  # `{channel}[-{campus}]-{yyyymmdd}-{n}`
    channel: str = Field(max_length=16)
    # The campus (院区, its own merchant) reconciled; none where the hospital reconciles as one.
    campus: str | None = Field(default=None, max_length=16)
    bill_date: date
    workflow_id: str = Field(max_length=80)
    workflow_run_id: str = Field(max_length=64)
    round: int
    status: str = Field(max_length=24, index=True)
    statement_id: str | None = Field(default=None, foreign_key="channel_statements.id", max_length=60)
    # Numbers on which both sides agree: counted and totalled here (money that moved: payments and refunds).
    matched_count: int = 0
    matched_payment_fen: int = _fen()
    matched_refund_fen: int = _fen()
    channel_only_count: int = 0
    platform_only_count: int = 0
    amount_mismatch_count: int = 0
    status_mismatch_count: int = 0
    open_count: int = 0
    channel_payment_fen: int = _fen()
    channel_refund_fen: int = _fen()
    platform_payment_fen: int = _fen()
    platform_refund_fen: int = _fen()
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    started_at: datetime = Timestamp(default_now=True)
    finished_at: datetime | None = Timestamp(nullable=True)


class ReconciliationItem(SQLModel, table=True):
    """One difference found by a run (agreeing numbers are counted on the run, not stored)."""

    __tablename__ = "reconciliation_items"
    __table_args__ = (Index("ix_reconciliation_items_run_outcome", "run_id", "outcome"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    run_id: str = Field(foreign_key="reconciliation_runs.id", max_length=60)
    kind: str = Field(max_length=16)  # payment | refund | insurance
    outcome: str = Field(max_length=24)
    out_trade_no: str | None = Field(default=None, max_length=100, index=True)
    out_refund_no: str | None = Field(default=None, max_length=100)
    transaction_id: str | None = Field(default=None, max_length=64)
    channel_amount_fen: int | None = _fen(nullable=True)
    platform_amount_fen: int | None = _fen(nullable=True)
    channel_status: str | None = Field(default=None, max_length=64)
    # The platform's record under the same number, even outside the day (a cross-day payment shows its time here).
    platform_status: str | None = Field(default=None, max_length=16)
    channel_occurred_at: datetime | None = Timestamp(nullable=True)
    platform_occurred_at: datetime | None = Timestamp(nullable=True)
    line_count: int = 0  # channel lines under this number (more than one is itself a difference)
    # The sources: the first line under this number in the run's statement, and the platform's bill (payments) or
    # refund (refunds) under it, whatever its day; none where that side has nothing.
    line_no: int | None = None
    platform_record_id: str | None = Field(default=None, max_length=100)
    # What the hospital is short by, as far as this difference goes (money the platform counts that the channel did
    # not move, or a refund the channel paid beyond the platform's): the bad debt if it is never recovered.
    shortfall_fen: int = _fen()
    resolution_state: str = Field(max_length=16)
    resolution: str | None = Field(default=None, max_length=32)
    resolved_by: str | None = Field(default=None, max_length=40)
    resolved_at: datetime | None = Timestamp(nullable=True)
    resolution_note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))

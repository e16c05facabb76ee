"""Reconciliation runs, their differences and their source lines as finance reads them."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from models.reconciliation import ItemKind, Outcome, Resolution, ResolutionState, RunStatus
from models.tables import ChannelStatementLine, ReconciliationItem, ReconciliationRun


class RunOut(BaseModel):
    run_id: str
    channel: str
    campus: str | None = Field(description="院区；为空表示全院统一对账")
    bill_date: date
    round: int
    status: RunStatus
    statement_id: str | None = Field(description="本批次下载的对账单（差错的渠道来源行在其中）")
    matched: int = Field(description="核对相符的笔数（不逐笔存储）")
    matched_payment_fen: int = Field(description="相符的收款金额（分）")
    matched_refund_fen: int = Field(description="相符的退款金额（分）")
    channel_only: int = Field(description="长款笔数：渠道有、平台无")
    platform_only: int = Field(description="短款笔数：平台有、渠道无")
    amount_mismatch: int
    status_mismatch: int
    open_items: int = Field(description="尚未处理的差错笔数")
    channel_payment_fen: int
    channel_refund_fen: int
    platform_payment_fen: int
    platform_refund_fen: int
    note: str | None
    started_at: datetime
    finished_at: datetime | None

    @property
    def differences(self) -> int:
        return self.channel_only + self.platform_only + self.amount_mismatch + self.status_mismatch


class ItemOut(BaseModel):
    """One difference, with its sources: the channel's statement line and the platform's bill or refund."""

    item_id: int
    run_id: str
    kind: ItemKind
    outcome: Outcome
    out_trade_no: str | None
    out_refund_no: str | None
    transaction_id: str | None
    channel_amount_fen: int | None
    platform_amount_fen: int | None
    shortfall_fen: int = Field(description="医院因此短收的金额（分）：未追回即为坏账")
    channel_status: str | None
    platform_status: str | None = Field(description="平台同一单号的记录状态（不限当日）")
    channel_occurred_at: datetime | None
    platform_occurred_at: datetime | None
    line_count: int
    line_no: int | None = Field(description="对账单中该单号的（首个）行号；平台独有时为空")
    platform_record_id: str | None = Field(description="平台的订单号（支付）或退款单号（退款）；渠道独有时为空")
    resolution_state: ResolutionState
    resolution: Resolution | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolution_note: str | None


class LineOut(BaseModel):
    """A line of a channel's statement, as downloaded."""

    statement_id: str
    line_no: int
    kind: str
    out_trade_no: str
    out_refund_no: str | None
    transaction_id: str
    refund_id: str | None
    amount_fen: int
    fee_fen: int
    occurred_at: datetime
    status: str = Field(description="渠道原始状态")
    succeeded: bool
    repeated: bool = Field(description="对账单中另有行使用同一单号")


class SourceOut(BaseModel):
    item: ItemOut
    lines: list[LineOut] = Field(description="对账单中该单号的全部行")


def run_out(row: ReconciliationRun) -> RunOut:
    return RunOut(
        run_id=row.id,
        channel=row.channel,
        campus=row.campus,
        bill_date=row.bill_date,
        round=row.round,
        status=RunStatus(row.status),
        statement_id=row.statement_id,
        matched=row.matched_count,
        matched_payment_fen=row.matched_payment_fen,
        matched_refund_fen=row.matched_refund_fen,
        channel_only=row.channel_only_count,
        platform_only=row.platform_only_count,
        amount_mismatch=row.amount_mismatch_count,
        status_mismatch=row.status_mismatch_count,
        open_items=row.open_count,
        channel_payment_fen=row.channel_payment_fen,
        channel_refund_fen=row.channel_refund_fen,
        platform_payment_fen=row.platform_payment_fen,
        platform_refund_fen=row.platform_refund_fen,
        note=row.note,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def item_out(row: ReconciliationItem) -> ItemOut:
    assert row.id is not None
    return ItemOut(
        item_id=row.id,
        run_id=row.run_id,
        kind=ItemKind(row.kind),
        outcome=Outcome(row.outcome),
        out_trade_no=row.out_trade_no,
        out_refund_no=row.out_refund_no,
        transaction_id=row.transaction_id,
        channel_amount_fen=row.channel_amount_fen,
        platform_amount_fen=row.platform_amount_fen,
        shortfall_fen=row.shortfall_fen,
        channel_status=row.channel_status,
        platform_status=row.platform_status,
        channel_occurred_at=row.channel_occurred_at,
        platform_occurred_at=row.platform_occurred_at,
        line_count=row.line_count,
        line_no=row.line_no,
        platform_record_id=row.platform_record_id,
        resolution_state=ResolutionState(row.resolution_state),
        resolution=Resolution(row.resolution) if row.resolution else None,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        resolution_note=row.resolution_note,
    )


def line_out(row: ChannelStatementLine) -> LineOut:
    return LineOut.model_validate(row, from_attributes=True)

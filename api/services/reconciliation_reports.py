"""A day's reconciliation result for finance to take away: one run's figures and its differences, as CSV and XLSX.

The same `RunReport` feeds the printable overview (api/services/reconciliation_overview.py). Amounts are shown in
元 with two decimals; every difference carries its sources (statement line number, platform record), so a printed or
exported result can be traced back to the channel's file and the platform's books.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.utils import get_column_letter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.errors import Problem
from api.exports import BOM, csv_text
from api.schemas.reconciliation import ItemOut, RunOut, item_out, run_out
from core.settings import Settings
from models.reconciliation import (
    KIND_NAMES,
    OUTCOME_NAMES,
    RESOLUTION_NAMES,
    RESOLUTION_STATE_NAMES,
    RUN_STATUS_NAMES,
    Outcome,
    ResolutionState,
)
from models.tables import ReconciliationItem, ReconciliationRun
from workflows.reconciliation import CHANNEL_NAMES
from workflows.steps import local, yuan

DIFFERENCE_OUTCOMES = (Outcome.CHANNEL_ONLY, Outcome.PLATFORM_ONLY, Outcome.AMOUNT_MISMATCH, Outcome.STATUS_MISMATCH)


@dataclass(frozen=True)
class RunReport:
    run: RunOut
    items: list[ItemOut]  # the differences, in the order they were found
    channel_name: str
    campus_name: str | None
    hospital_name: str

    @property
    def title(self) -> str:
        where = f"（{self.campus_name}）" if self.campus_name else ""
        return f"{self.channel_name}{where} {self.run.bill_date:%Y-%m-%d} 对账结果"

    @property
    def open_shortfall_fen(self) -> int:
        return sum(i.shortfall_fen for i in self.items if i.resolution_state is ResolutionState.OPEN)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for item in self.items if item.outcome is outcome)


async def load_report(session: AsyncSession, settings: Settings, run_id: str) -> RunReport:
    run = await session.get(ReconciliationRun, run_id)
    if run is None:
        raise Problem(404, "NOT_FOUND", "未找到", f"对账批次 {run_id} 不存在")
    rows = await session.execute(
        select(ReconciliationItem)
        .where(col(ReconciliationItem.run_id) == run_id, col(ReconciliationItem.outcome) != Outcome.MATCHED.value)
        .order_by(col(ReconciliationItem.id))
    )
    campus = settings.campuses.get(run.campus) if run.campus else None
    return RunReport(
        run=run_out(run),
        items=[item_out(row) for row in rows.scalars()],
        channel_name=CHANNEL_NAMES.get(run.channel, run.channel),
        campus_name=(campus.name if campus else run.campus),
        hospital_name=settings.hospital_name,
    )


def money(fen: int | None) -> str:
    return "" if fen is None else yuan(fen)


def beijing(moment: datetime | None) -> str:
    return local(moment, "%Y-%m-%d %H:%M:%S") if moment else ""


def summary_rows(report: RunReport) -> list[tuple[str, str]]:
    """The run's figures, label and value, as every rendering shows them."""
    run = report.run
    return [
        ("医院", report.hospital_name),
        ("对账日", f"{run.bill_date:%Y-%m-%d}（北京时间）"),
        ("渠道", report.channel_name),
        ("院区", report.campus_name or "全院"),
        ("批次", f"{run.run_id}（第 {run.round} 轮）"),
        ("状态", RUN_STATUS_NAMES[run.status]),
        ("对账单", run.statement_id or "（无）"),
        ("相符", f"{run.matched} 笔；收款 {yuan(run.matched_payment_fen)} 元，退款 {yuan(run.matched_refund_fen)} 元"),
        ("渠道合计", f"收款 {yuan(run.channel_payment_fen)} 元，退款 {yuan(run.channel_refund_fen)} 元"),
        ("平台合计", f"收款 {yuan(run.platform_payment_fen)} 元，退款 {yuan(run.platform_refund_fen)} 元"),
        (
            "差错",
            f"{run.differences} 笔（长款 {run.channel_only}、短款 {run.platform_only}、金额不符 {run.amount_mismatch}、"
            f"状态不符 {run.status_mismatch}），待处理 {run.open_items} 笔",
        ),
        ("未处理短款", f"{yuan(report.open_shortfall_fen)} 元"),
        ("开始", beijing(run.started_at)),
        ("结束", beijing(run.finished_at)),
    ]


def _fen(value: int | None) -> Decimal | None:
    """Fen as a decimal number of 元 for a spreadsheet cell (exact, unlike a float)."""
    return None if value is None else Decimal(value).scaleb(-2)


# Every column of an exported difference: heading, the cell as text (CSV), the cell as a value (XLSX).
_Column = tuple[str, Callable[[ItemOut], Any], Callable[[ItemOut], Any] | None]
EXPORT_COLUMNS: list[_Column] = [
    ("差错编号", lambda i: i.item_id, None),
    ("类型", lambda i: KIND_NAMES[i.kind], None),
    ("核对结果", lambda i: OUTCOME_NAMES[i.outcome], None),
    ("商户订单号", lambda i: i.out_trade_no, None),
    ("退款单号", lambda i: i.out_refund_no, None),
    ("渠道交易号", lambda i: i.transaction_id, None),
    ("渠道金额（元）", lambda i: money(i.channel_amount_fen), lambda i: _fen(i.channel_amount_fen)),
    ("平台金额（元）", lambda i: money(i.platform_amount_fen), lambda i: _fen(i.platform_amount_fen)),
    ("短款金额（元）", lambda i: money(i.shortfall_fen), lambda i: _fen(i.shortfall_fen)),
    ("渠道状态", lambda i: i.channel_status, None),
    ("平台状态", lambda i: i.platform_status, None),
    ("渠道时间", lambda i: beijing(i.channel_occurred_at), None),
    ("平台时间", lambda i: beijing(i.platform_occurred_at), None),
    ("对账单行号", lambda i: i.line_no, None),
    ("对账单行数", lambda i: i.line_count, None),
    ("平台单据", lambda i: i.platform_record_id, None),
    ("处理状态", lambda i: RESOLUTION_STATE_NAMES[i.resolution_state], None),
    ("处理方式", lambda i: RESOLUTION_NAMES[i.resolution] if i.resolution else None, None),
    ("处理人", lambda i: i.resolved_by, None),
    ("处理时间", lambda i: beijing(i.resolved_at), None),
    ("处理说明", lambda i: i.resolution_note, None),
]
# The run columns every CSV row starts with, so a file read on its own still says what it is.
_RUN_COLUMNS = ("批次", "对账日", "渠道", "院区")


def csv_lines(report: RunReport) -> Iterator[str]:
    run = report.run
    context = (run.run_id, f"{run.bill_date:%Y-%m-%d}", report.channel_name, report.campus_name or "全院")
    yield BOM + csv_text([(*_RUN_COLUMNS, *(heading for heading, _, _ in EXPORT_COLUMNS))])
    for item in report.items:
        yield csv_text([(*context, *(text(item) for _, text, _ in EXPORT_COLUMNS))])


def xlsx_bytes(report: RunReport) -> bytes:
    """Two sheets: the run's figures (汇总) and its differences (差错明细), amounts as numbers of 元."""
    book = Workbook()
    summary = book.active
    summary.title = "汇总"
    summary.append([report.title])
    for label, value in summary_rows(report):
        summary.append([label, value])
    summary.column_dimensions["A"].width = 14
    summary.column_dimensions["B"].width = 90

    sheet = book.create_sheet("差错明细")
    sheet.append([heading for heading, _, _ in EXPORT_COLUMNS])
    money = [n for n, (_, _, value) in enumerate(EXPORT_COLUMNS, start=1) if value is not None]
    for item in report.items:
        sheet.append([(value or text)(item) for _, text, value in EXPORT_COLUMNS])
    for column in money:
        for (cell,) in sheet.iter_rows(min_row=2, min_col=column, max_col=column):
            cell.number_format = "0.00"
    for n, (heading, _, _) in enumerate(EXPORT_COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(n)].width = max(10, 2 * len(heading) + 4)
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()

"""Daily reconciliation (对账, 8.4.3): download a channel's statement, match it against the platform in PostgreSQL,
check 医保 totals (3201/3202), and record what finance decides about each difference.

Matching is set-wise: one INSERT … SELECT joins the day's statement lines with the platform's paid bills and
succeeded refunds (FULL OUTER JOIN on kind and number) and writes every item; one UPDATE counts them into the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.adapters.errors import AdapterRefusal
from activities.adapters.insurance import MedicalInsurance
from activities.adapters.payment.statement import StatementChannel, StatementNotReady
from activities.adapters.sandbox import table
from activities.errors import business_error, refusals_are_final
from activities.insurance_book import InsuranceBook
from models.billing import ChannelBillLine, ChannelBillLineKind
from models.insurance import DailyCheckDetailQuery, DailyCheckLine, DailyCheckOutcome, DailyCheckQuery
from models.reconciliation import (
    FinishRun,
    InsuranceCheckRequest,
    InsuranceGroup,
    ItemKind,
    MatchSummary,
    OpenRun,
    Outcome,
    RecordResolution,
    ResolutionResult,
    ResolutionState,
    RunStatus,
    StatementRequest,
    StatementSummary,
)
from models.tables import ChannelStatement, ChannelStatementLine, ReconciliationItem, ReconciliationRun

STATEMENT_NOT_READY = "STATEMENT_NOT_READY"
# Refusals that mean "not yet" rather than "never": Alipay answers a day whose bill is still being made like this.
_NOT_READY_CODES = frozenset({"BILL_NOT_EXIST"})
# The channels' words for a line whose money moved (WeChat Pay and the sandbox; Alipay's 业务类型).
_SUCCEEDED_WORDS = {
    ChannelBillLineKind.PAYMENT: frozenset({"SUCCESS", "交易"}),
    ChannelBillLineKind.REFUND: frozenset({"REFUND", "退款"}),
}
_INSURANCE_OUTCOMES = {
    DailyCheckOutcome.MATCHED: Outcome.MATCHED,
    DailyCheckOutcome.AMOUNT_MISMATCH: Outcome.AMOUNT_MISMATCH,
    # In our books only: short (短款). At the 医保 platform only: surplus (长款).
    DailyCheckOutcome.HOSPITAL_ONLY: Outcome.PLATFORM_ONLY,
    DailyCheckOutcome.PLATFORM_ONLY: Outcome.CHANNEL_ONLY,
}

_STATEMENTS = table(ChannelStatement)
_LINES = table(ChannelStatementLine)
_RUNS = table(ReconciliationRun)
_ITEMS = table(ReconciliationItem)

# The day is the Beijing-time calendar day, as the channels date their statements: [00:00, next 00:00) in
# Asia/Shanghai, so a payment at 23:59:59.999 belongs to it and one at 00:00:00 of the next day does not.
# Payments are keyed on out_trade_no, refunds on out_refund_no (a refund line without one stands alone).
# Outcome, for a number on either side:
# - only the platform has it that day: platform_only (短款);
# - both have it: status_mismatch if the channel's line did not succeed, amount_mismatch if the amounts differ;
# - only the channel has it: channel_only (长款), unless the platform knows the number in another state (an unpaid
#   bill, a refund still processing): status_mismatch. A line that did not succeed on a number the platform does not
#   count as paid either is agreement (matched).
# `platform_status` and `platform_occurred_at` show the platform's record under the number whatever its day, so a
# payment across midnight reads as such.
_MATCH = text(
    """
WITH bounds AS (
    SELECT CAST(:bill_date AS date)::timestamp AT TIME ZONE 'Asia/Shanghai' AS day_start,
           (CAST(:bill_date AS date) + 1)::timestamp AT TIME ZONE 'Asia/Shanghai' AS day_end
),
channel_side AS (
    SELECT l.kind,
           CASE WHEN l.kind = 'payment' THEN l.out_trade_no
                ELSE COALESCE(l.out_refund_no, '#' || l.line_no) END AS key,
           min(l.out_trade_no) AS out_trade_no,
           min(l.out_refund_no) AS out_refund_no,
           min(l.transaction_id) AS transaction_id,
           sum(l.amount_fen)::bigint AS amount_fen,
           bool_and(l.succeeded) AS succeeded,
           string_agg(DISTINCT l.status, ',') AS status,
           min(l.occurred_at) AS occurred_at,
           count(*) AS line_count
      FROM channel_statement_lines l
     WHERE l.statement_id = :statement_id
     GROUP BY 1, 2
),
platform_side AS (
    SELECT 'payment' AS kind, b.id AS key, b.amount_fen::bigint AS amount_fen, b.paid_at AS occurred_at
      FROM bills b, bounds
     WHERE b.channel = :channel AND b.status = 'paid'
       AND b.paid_at >= bounds.day_start AND b.paid_at < bounds.day_end
    UNION ALL
    SELECT 'refund', r.id, r.amount_fen::bigint, r.finished_at
      FROM refunds r JOIN bills b ON b.id = r.bill_id, bounds
     WHERE b.channel = :channel AND r.status = 'succeeded'
       AND r.finished_at >= bounds.day_start AND r.finished_at < bounds.day_end
),
joined AS (
    SELECT COALESCE(c.kind, p.kind) AS kind, COALESCE(c.key, p.key) AS key,
           c.key AS c_key, p.key AS p_key,
           c.out_trade_no AS c_trade, c.out_refund_no AS c_refund, c.transaction_id,
           c.amount_fen AS c_amount, c.succeeded, c.status AS c_status, c.occurred_at AS c_at,
           COALESCE(c.line_count, 0) AS line_count,
           p.amount_fen AS p_amount, p.occurred_at AS p_at
      FROM channel_side c
      FULL OUTER JOIN platform_side p ON p.kind = c.kind AND p.key = c.key
),
known AS (
    SELECT j.*,
           COALESCE(ob.id, orf.bill_id) AS p_trade,
           orf.id AS p_refund,
           COALESCE(ob.status, orf.status) AS p_status,
           COALESCE(ob.paid_at, orf.finished_at) AS p_known_at
      FROM joined j
      LEFT JOIN bills ob ON j.kind = 'payment' AND ob.id = j.key
      LEFT JOIN refunds orf ON j.kind = 'refund' AND orf.id = j.key
),
classified AS (
    SELECT k.*,
           CASE
               WHEN c_key IS NULL THEN 'platform_only'
               WHEN p_key IS NOT NULL THEN
                   CASE WHEN NOT succeeded THEN 'status_mismatch'
                        WHEN c_amount <> p_amount THEN 'amount_mismatch'
                        ELSE 'matched' END
               WHEN succeeded THEN
                   CASE WHEN p_status IS NULL OR p_status IN ('paid', 'succeeded') THEN 'channel_only'
                        ELSE 'status_mismatch' END
               WHEN p_status IN ('paid', 'succeeded') THEN 'status_mismatch'
               ELSE 'matched'
           END AS outcome
      FROM known k
)
INSERT INTO reconciliation_items (
    run_id, kind, outcome, out_trade_no, out_refund_no, transaction_id, channel_amount_fen, platform_amount_fen,
    channel_status, platform_status, channel_occurred_at, platform_occurred_at, line_count, resolution_state)
SELECT :run_id, kind, outcome, COALESCE(c_trade, p_trade), COALESCE(c_refund, p_refund), transaction_id,
       c_amount, p_amount, c_status, p_status, c_at, COALESCE(p_at, p_known_at), line_count,
       CASE WHEN outcome = 'matched' THEN 'none' ELSE 'open' END
  FROM classified
 ORDER BY kind, COALESCE(c_trade, p_trade), COALESCE(c_refund, p_refund)
"""
)

# The run's counts and totals, from its items; the channel's totals from its statement where there is one (they
# count only lines that succeeded).
_SUMMARISE = text(
    """
UPDATE reconciliation_runs r
   SET matched_count = s.matched,
       channel_only_count = s.channel_only,
       platform_only_count = s.platform_only,
       amount_mismatch_count = s.amount_mismatch,
       status_mismatch_count = s.status_mismatch,
       open_count = s.open,
       platform_payment_fen = s.platform_payment,
       platform_refund_fen = s.platform_refund,
       channel_payment_fen = COALESCE(
           (SELECT st.payment_total_fen FROM channel_statements st WHERE st.id = r.statement_id), s.channel_payment),
       channel_refund_fen = COALESCE(
           (SELECT st.refund_total_fen FROM channel_statements st WHERE st.id = r.statement_id), s.channel_refund),
       status = CASE WHEN s.open > 0 THEN 'awaiting_resolution' ELSE 'balanced' END
  FROM (
    SELECT count(*) FILTER (WHERE outcome = 'matched') AS matched,
           count(*) FILTER (WHERE outcome = 'channel_only') AS channel_only,
           count(*) FILTER (WHERE outcome = 'platform_only') AS platform_only,
           count(*) FILTER (WHERE outcome = 'amount_mismatch') AS amount_mismatch,
           count(*) FILTER (WHERE outcome = 'status_mismatch') AS status_mismatch,
           count(*) FILTER (WHERE resolution_state = 'open') AS open,
           COALESCE(sum(platform_amount_fen) FILTER (WHERE kind <> 'refund'), 0) AS platform_payment,
           COALESCE(sum(platform_amount_fen) FILTER (WHERE kind = 'refund'), 0) AS platform_refund,
           COALESCE(sum(channel_amount_fen) FILTER (WHERE kind <> 'refund'), 0) AS channel_payment,
           COALESCE(sum(channel_amount_fen) FILTER (WHERE kind = 'refund'), 0) AS channel_refund
      FROM reconciliation_items
     WHERE run_id = :run_id
  ) s
 WHERE r.id = :run_id
"""
)


def _now() -> datetime:
    return datetime.now(UTC)


def not_ready(message: str) -> ApplicationError:
    # Non-retryable on purpose: the workflow waits on a durable timer rather than the activity retrying at once.
    return ApplicationError(message, type=STATEMENT_NOT_READY, non_retryable=True)


class ReconciliationActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        channels: Mapping[str, object],
        insurance: MedicalInsurance,
        book: InsuranceBook,
        insurance_groups: Sequence[InsuranceGroup],
    ) -> None:
        self._sessions = sessions
        # Payment adapters by channel name (what `bills.channel` holds).
        self._channels = channels
        self._insurance = insurance
        self._book = book
        self._insurance_groups = list(insurance_groups)

    # --- runs (local activities) ---

    @activity.defn
    async def open_run(self, request: OpenRun) -> str:
        """The run of this round of the workflow, created once; runs of the day that an earlier execution left
        unfinished (e.g. it was terminated) are superseded by it."""
        async with self._sessions() as session, session.begin():
            # Serialises openings for one day, so two executions (one ending, one starting) cannot take one number.
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                {"key": f"reconciliation:{request.channel}:{request.bill_date}"},
            )
            existing = await session.scalar(
                _RUNS.select()
                .with_only_columns(_RUNS.c.id)
                .where(_RUNS.c.workflow_run_id == request.workflow_run_id, _RUNS.c.round == request.round)
            )
            if existing is not None:
                return str(existing)
            day = (_RUNS.c.channel == request.channel) & (_RUNS.c.bill_date == request.bill_date)
            await session.execute(
                _RUNS.update()
                .where(day, _RUNS.c.status.in_((RunStatus.RUNNING, RunStatus.AWAITING_RESOLUTION)))
                .values(status=RunStatus.SUPERSEDED.value, finished_at=_now())
            )
            count = await session.scalar(_RUNS.select().with_only_columns(func.count()).where(day))
            run_id = f"{request.channel}-{request.bill_date:%Y%m%d}-{int(count or 0) + 1}"
            await session.execute(
                insert(_RUNS).values(
                    id=run_id,
                    channel=request.channel,
                    bill_date=request.bill_date,
                    workflow_id=request.workflow_id,
                    workflow_run_id=request.workflow_run_id,
                    round=request.round,
                    status=RunStatus.RUNNING.value,
                )
            )
            return run_id

    @activity.defn
    async def finish_run(self, request: FinishRun) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                _RUNS.update()
                .where(_RUNS.c.id == request.run_id)
                .values(status=request.status.value, note=request.note, finished_at=_now())
            )

    # --- the channel's statement (integration queue) ---

    @activity.defn
    async def download_statement(self, request: StatementRequest) -> StatementSummary:
        """Download the day's statement and store its lines, replacing any earlier download of that day at once."""
        channel = self._channels.get(request.channel)
        if not isinstance(channel, StatementChannel):
            raise business_error("CHANNEL_NOT_RECONCILABLE", f"支付渠道 {request.channel} 未配置或不提供对账单")
        try:
            lines = await channel.download_bill(bill_date=request.bill_date)
        except StatementNotReady as exc:
            raise not_ready(str(exc)) from exc
        except AdapterRefusal as refusal:
            if refusal.code in _NOT_READY_CODES:
                raise not_ready(refusal.message) from refusal
            raise business_error(refusal.code, refusal.message) from refusal
        statement_id = f"{request.channel}-{request.bill_date:%Y%m%d}"
        rows = [_line_row(statement_id, number, line) for number, line in enumerate(lines, start=1)]
        totals = {
            "line_count": len(rows),
            "payment_count": sum(row["kind"] == ChannelBillLineKind.PAYMENT for row in rows),
            "refund_count": sum(row["kind"] == ChannelBillLineKind.REFUND for row in rows),
            "payment_total_fen": _total(rows, ChannelBillLineKind.PAYMENT),
            "refund_total_fen": _total(rows, ChannelBillLineKind.REFUND),
            "fee_total_fen": sum(row["fee_fen"] for row in rows if row["succeeded"]),
            "downloaded_at": _now(),
            "status": "downloaded",
        }
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(_STATEMENTS)
                .values(id=statement_id, channel=request.channel, bill_date=request.bill_date, **totals)
                .on_conflict_do_update(index_elements=["id"], set_=totals)
            )
            await session.execute(_LINES.delete().where(_LINES.c.statement_id == statement_id))
            if rows:
                await session.execute(insert(_LINES), rows)
            await session.execute(_RUNS.update().where(_RUNS.c.id == request.run_id).values(statement_id=statement_id))
        return StatementSummary(
            statement_id=statement_id,
            line_count=len(rows),
            payment_total_fen=totals["payment_total_fen"],
            refund_total_fen=totals["refund_total_fen"],
        )

    # --- matching (local activity) ---

    @activity.defn
    async def match_statement(self, run_id: str) -> MatchSummary:
        async with self._sessions() as session, session.begin():
            run = (await session.execute(_RUNS.select().where(_RUNS.c.id == run_id).with_for_update())).one_or_none()
            if run is None:
                raise business_error("RUN_NOT_FOUND", f"对账批次 {run_id} 不存在")
            if run.status != RunStatus.RUNNING:  # matched by an earlier attempt whose answer was lost
                return await _summary(session, run_id)
            if run.statement_id is None:
                raise business_error("NO_STATEMENT", f"对账批次 {run_id} 尚无对账单")
            params = {
                "run_id": run_id,
                "statement_id": run.statement_id,
                "channel": run.channel,
                "bill_date": run.bill_date,
            }
            await session.execute(_MATCH, params)
            await session.execute(_SUMMARISE, {"run_id": run_id})
            await session.execute(
                _STATEMENTS.update().where(_STATEMENTS.c.id == run.statement_id).values(status="reconciled")
            )
            return await _summary(session, run_id)

    # --- 医保 (integration queue) ---

    @activity.defn
    async def check_insurance(self, request: InsuranceCheckRequest) -> MatchSummary:
        """3201 per group against what the platform booked; 3202 per clearing institution where a total differs."""
        async with self._sessions() as session:
            status = await session.scalar(
                _RUNS.select().with_only_columns(_RUNS.c.status).where(_RUNS.c.id == request.run_id)
            )
            if status is None:
                raise business_error("RUN_NOT_FOUND", f"对账批次 {request.run_id} 不存在")
            if status != RunStatus.RUNNING:
                return await _summary(session, request.run_id)
        booked = await self._book.settled_on(request.bill_date)
        groups = list(dict.fromkeys([*self._insurance_groups, *(entry.group for entry in booked)]))
        unbalanced: dict[str, list[tuple[InsuranceGroup, str]]] = {}
        for group in groups:
            lines = [entry.line for entry in booked if entry.group == group and not entry.line.cancelled]
            result = await refusals_are_final(
                self._insurance.daily_check(
                    query=DailyCheckQuery(
                        insutype=group.insutype,
                        clr_type=group.clr_type,
                        setl_optins=group.setl_optins,
                        begin=request.bill_date,
                        end=request.bill_date,
                        total_fen=sum(line.total_fen for line in lines),
                        fund_fen=sum(line.fund_fen for line in lines),
                        account_fen=sum(line.account_fen for line in lines),
                        settlement_count=len(lines),
                    )
                )
            )
            if not result.balanced:
                unbalanced.setdefault(group.setl_optins, []).append((group, result.description or result.stmt_rslt))
        items: list[dict[str, Any]] = []
        for optins in dict.fromkeys(group.setl_optins for group in groups):
            ours = [entry.line for entry in booked if entry.group.setl_optins == optins]
            if optins not in unbalanced:
                items += [_insurance_item(request.run_id, line, Outcome.MATCHED) for line in ours if not line.cancelled]
                continue
            detail = await refusals_are_final(
                self._insurance.daily_check_detail(
                    idempotency_key=f"{request.idempotency_key}:{optins}",
                    requested_at=request.requested_at,
                    query=DailyCheckDetailQuery(
                        setl_optins=optins, begin=request.bill_date, end=request.bill_date, lines=ours
                    ),
                )
            )
            by_id = {line.setl_id: line for line in ours}
            items += [
                _insurance_item(
                    request.run_id,
                    by_id.get(result.setl_id),
                    _INSURANCE_OUTCOMES[result.outcome],
                    setl_id=result.setl_id,
                    memo=result.memo,
                )
                for result in detail.lines
            ]
            if not detail.mismatches:
                # The totals differ and no settlement does: keep the difference in sight as one item per total.
                items += [
                    _insurance_total_item(request.run_id, group, description)
                    for group, description in unbalanced[optins]
                ]
        async with self._sessions() as session, session.begin():
            if items:
                await session.execute(insert(_ITEMS), items)
            await session.execute(_SUMMARISE, {"run_id": request.run_id})
            return await _summary(session, request.run_id)

    # --- finance's decisions (local activity) ---

    @activity.defn
    async def record_resolution(self, request: RecordResolution) -> ResolutionResult:
        async with self._sessions() as session, session.begin():
            resolved = await session.scalar(
                _ITEMS.update()
                .where(
                    _ITEMS.c.id == request.item_id,
                    _ITEMS.c.run_id == request.run_id,
                    _ITEMS.c.resolution_state == ResolutionState.OPEN.value,
                )
                .values(
                    resolution_state=ResolutionState.RESOLVED.value,
                    resolution=request.resolution.value,
                    resolved_by=request.resolved_by,
                    resolved_at=request.resolved_at,
                    resolution_note=request.note,
                )
                .returning(_ITEMS.c.id)
            )
            if resolved is None:
                item = (await session.execute(_ITEMS.select().where(_ITEMS.c.id == request.item_id))).one_or_none()
                # A retry of this very decision finds it recorded; anything else is a refusal.
                if item is None or (item.resolved_by, item.resolved_at) != (request.resolved_by, request.resolved_at):
                    raise business_error("ITEM_NOT_OPEN", "该差错账不存在或已处理")
            open_items = await session.scalar(
                _RUNS.update()
                .where(_RUNS.c.id == request.run_id)
                .values(
                    open_count=text(
                        "(SELECT count(*) FROM reconciliation_items"
                        " WHERE run_id = reconciliation_runs.id AND resolution_state = 'open')"
                    )
                )
                .returning(_RUNS.c.open_count)
            )
        return ResolutionResult(
            run_id=request.run_id,
            item_id=request.item_id,
            resolution=request.resolution,
            resolved_by=request.resolved_by,
            resolved_at=request.resolved_at,
            open_items=int(open_items or 0),
        )


def _succeeded(line: ChannelBillLine) -> bool:
    return line.status in _SUCCEEDED_WORDS[line.kind]


def _line_row(statement_id: str, number: int, line: ChannelBillLine) -> dict[str, Any]:
    return {
        "statement_id": statement_id,
        "line_no": number,
        "kind": line.kind.value,
        "out_trade_no": line.out_trade_no,
        "out_refund_no": line.out_refund_no,
        "transaction_id": line.transaction_id,
        "refund_id": line.refund_id,
        "amount_fen": line.amount_fen,
        "fee_fen": line.fee_fen,
        "occurred_at": line.occurred_at,
        "status": line.status,
        "succeeded": _succeeded(line),
    }


def _total(rows: list[dict[str, Any]], kind: ChannelBillLineKind) -> int:
    return sum(row["amount_fen"] for row in rows if row["kind"] == kind and row["succeeded"])


def _insurance_item(
    run_id: str,
    line: DailyCheckLine | None,
    outcome: Outcome,
    *,
    setl_id: str | None = None,
    memo: str | None = None,
) -> dict[str, Any]:
    ours = line.total_fen if line is not None else None
    return {
        "run_id": run_id,
        "kind": ItemKind.INSURANCE.value,
        "outcome": outcome.value,
        "out_trade_no": setl_id or (line.setl_id if line is not None else None),
        "transaction_id": line.mdtrt_id if line is not None else None,
        # 3202 answers per settlement without the platform's amounts; where it agrees they are ours.
        "channel_amount_fen": ours if outcome is Outcome.MATCHED else None,
        "platform_amount_fen": ours,
        "channel_status": memo,
        "line_count": 0 if outcome is Outcome.PLATFORM_ONLY else 1,
        "resolution_state": (ResolutionState.NONE if outcome is Outcome.MATCHED else ResolutionState.OPEN).value,
    }


def _insurance_total_item(run_id: str, group: InsuranceGroup, description: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "kind": ItemKind.INSURANCE.value,
        "outcome": Outcome.AMOUNT_MISMATCH.value,
        "out_trade_no": f"3201:{group.setl_optins}:{group.insutype}:{group.clr_type}",
        "channel_status": description[:64],
        "line_count": 0,
        "resolution_state": ResolutionState.OPEN.value,
    }


async def _summary(session: AsyncSession, run_id: str) -> MatchSummary:
    run = (await session.execute(_RUNS.select().where(_RUNS.c.id == run_id))).one()
    open_ids = await session.scalars(
        _ITEMS.select()
        .with_only_columns(_ITEMS.c.id)
        .where(_ITEMS.c.run_id == run_id, _ITEMS.c.resolution_state == ResolutionState.OPEN.value)
        .order_by(_ITEMS.c.id)
    )
    return MatchSummary(
        run_id=run_id,
        matched=run.matched_count,
        channel_only=run.channel_only_count,
        platform_only=run.platform_only_count,
        amount_mismatch=run.amount_mismatch_count,
        status_mismatch=run.status_mismatch_count,
        channel_payment_fen=run.channel_payment_fen,
        channel_refund_fen=run.channel_refund_fen,
        platform_payment_fen=run.platform_payment_fen,
        platform_refund_fen=run.platform_refund_fen,
        open_item_ids=list(open_ids),
    )

"""Daily reconciliation (对账, 8.4.3): download a channel's statement, match it against the platform in PostgreSQL,
check 医保 totals (3201/3202), and record what finance decides about each difference.

Matching is set-wise and writes differences only: one statement joins the run's statement lines with the platform's
paid bills and succeeded refunds of the day (FULL OUTER JOIN on kind and number), folds every agreeing number into
one count and total per kind, stores each difference as an item naming its source line and platform record, and
puts the counts and totals on the run. A busy day is a million numbers and a few differences, so storing only these
keeps the statement close to the cost of the join itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
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
from core.reconciliation import ReconciliationPolicy, campus_channel
from models.billing import ChannelBillLine, ChannelBillLineKind
from models.common import HOSPITAL_TZ
from models.insurance import DailyCheckDetailQuery, DailyCheckLine, DailyCheckOutcome, DailyCheckQuery
from models.reconciliation import (
    BadDebtExposure,
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

# The matching statement runs once a day over a million rows. JIT compilation costs more than it saves on it. A hash
# join of the two sides beats sorting both for a merge join. And the planner, which cannot know that all but a few
# numbers fold into one group per kind, would sort every number to group them: hashing keeps a group per difference.
_MATCH_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL enable_mergejoin = off", "SET LOCAL enable_sort = off")

# The day is the Beijing-time calendar day, as the channels date their statements: [00:00, next 00:00) in
# Asia/Shanghai, so a payment at 23:59:59.999 belongs to it and one at 00:00:00 of the next day does not. A campus's
# run takes the bills of that campus (those naming none belong to the main campus); a run without campus takes all.
# Payments are keyed on out_trade_no, refunds on out_refund_no (a refund line without one stands alone). Lines whose
# number repeats in the statement (flagged at download) are folded into one: their amounts summed, succeeded only if
# all did; every other line is its number's only line, so the statement is read once and never grouped. A refund
# that returned nothing through the channel (a re-settlement that left the self-pay part as it was) is no channel's.
# Outcome, for a number on either side:
# - only the platform has it that day: platform_only (短款);
# - both have it: status_mismatch if the channel's line did not succeed, amount_mismatch if the amounts differ;
# - only the channel has it: channel_only (长款), unless the platform knows the number in another state (an unpaid
#   bill, a refund still processing): status_mismatch. A line that did not succeed on a number the platform does not
#   count as paid either is agreement (matched). The platform's record under the number is looked up (by primary key)
#   for these numbers only.
# `grouped` folds every agreeing number of a kind into one row (key NULL) and keeps each difference as its own row:
# a hash aggregate with as many groups as differences, so the million matched numbers are counted, never stored.
# Each difference is then written with its source: the first statement line under the number (`line_no`) and the
# platform's bill or refund under it, whatever its day (so a payment across midnight reads as such).
# `shortfall_fen` is what the hospital is short by: a payment the platform counts that the channel did not collect
# (in full), or a refund the channel paid out that the platform does not count (or beyond its amount).
_MATCH = text(
    """
WITH channel_side AS (
    SELECT l.kind,
           CASE WHEN l.kind = 'payment' THEN l.out_trade_no
                ELSE COALESCE(l.out_refund_no, '#' || l.line_no) END AS key,
           l.line_no, 1 AS line_count, l.amount_fen::bigint AS amount_fen, l.succeeded
      FROM channel_statement_lines l
     WHERE l.statement_id = :statement_id AND NOT l.repeated
    UNION ALL
    SELECT l.kind, CASE WHEN l.kind = 'payment' THEN l.out_trade_no ELSE l.out_refund_no END AS key,
           min(l.line_no), count(*), sum(l.amount_fen)::bigint, bool_and(l.succeeded)
      FROM channel_statement_lines l
     WHERE l.statement_id = :statement_id AND l.repeated
     GROUP BY 1, 2
),
platform_side AS (
    SELECT 'payment' AS kind, b.id AS key, b.amount_fen::bigint AS amount_fen
      FROM bills b
     WHERE b.channel = :channel AND b.status = 'paid'
       AND b.paid_at >= :day_start AND b.paid_at < :day_end
       AND (CAST(:campus AS text) IS NULL OR COALESCE(b.campus, CAST(:main_campus AS text)) = CAST(:campus AS text))
    UNION ALL
    SELECT 'refund', r.id, r.amount_fen::bigint
      FROM refunds r JOIN bills b ON b.id = r.bill_id
     WHERE b.channel = :channel AND r.status = 'succeeded' AND r.amount_fen > 0
       AND r.finished_at >= :day_start AND r.finished_at < :day_end
       AND (CAST(:campus AS text) IS NULL OR COALESCE(b.campus, CAST(:main_campus AS text)) = CAST(:campus AS text))
),
joined AS (
    SELECT COALESCE(c.kind, p.kind) AS kind, COALESCE(c.key, p.key) AS key, c.key AS c_key, p.key AS p_key,
           c.line_no, c.line_count, c.amount_fen AS c_amount, c.succeeded, p.amount_fen AS p_amount,
           CASE WHEN p.key IS NULL AND c.kind = 'payment' THEN (SELECT ob.status FROM bills ob WHERE ob.id = c.key)
                WHEN p.key IS NULL THEN (SELECT orf.status FROM refunds orf WHERE orf.id = c.key) END AS known_status
      FROM channel_side c
      FULL OUTER JOIN platform_side p ON p.kind = c.kind AND p.key = c.key
),
classified AS (
    SELECT j.*,
           CASE
               WHEN c_key IS NULL THEN 'platform_only'
               WHEN p_key IS NOT NULL THEN
                   CASE WHEN NOT succeeded THEN 'status_mismatch'
                        WHEN c_amount <> p_amount THEN 'amount_mismatch'
                        ELSE 'matched' END
               WHEN succeeded THEN
                   CASE WHEN known_status IS NULL OR known_status IN ('paid', 'succeeded') THEN 'channel_only'
                        ELSE 'status_mismatch' END
               WHEN known_status IN ('paid', 'succeeded') THEN 'status_mismatch'
               ELSE 'matched'
           END AS outcome
      FROM joined j
),
grouped AS MATERIALIZED (
    SELECT kind, outcome, CASE WHEN outcome = 'matched' THEN NULL ELSE key END AS key,
           count(*) AS numbers, min(line_no) AS line_no, COALESCE(sum(line_count), 0) AS line_count,
           bool_and(succeeded) AS succeeded, sum(c_amount)::bigint AS c_amount, sum(p_amount)::bigint AS p_amount
      FROM classified
     GROUP BY 1, 2, 3
),
differences AS (
    INSERT INTO reconciliation_items (
        run_id, kind, outcome, out_trade_no, out_refund_no, transaction_id, channel_amount_fen, platform_amount_fen,
        channel_status, platform_status, channel_occurred_at, platform_occurred_at, line_count, line_no,
        platform_record_id, shortfall_fen, resolution_state)
    SELECT :run_id, g.kind, g.outcome,
           COALESCE(l.out_trade_no, p.bill_id), COALESCE(l.out_refund_no, p.refund_id), l.transaction_id,
           g.c_amount, g.p_amount, l.status, p.status, l.occurred_at, p.occurred_at, g.line_count, g.line_no,
           p.id,
           CASE
               WHEN g.kind = 'payment' THEN
                   CASE WHEN g.outcome = 'amount_mismatch' THEN greatest(g.p_amount - g.c_amount, 0)
                        WHEN g.outcome IN ('platform_only', 'status_mismatch') THEN COALESCE(g.p_amount, 0)
                        ELSE 0 END
               ELSE
                   CASE WHEN g.outcome = 'amount_mismatch' THEN greatest(g.c_amount - g.p_amount, 0)
                        WHEN g.outcome IN ('channel_only', 'status_mismatch') AND g.p_amount IS NULL
                             AND g.succeeded THEN g.c_amount
                        ELSE 0 END
           END,
           'open'
      FROM grouped g
      LEFT JOIN LATERAL (
          SELECT * FROM channel_statement_lines
           WHERE statement_id = :statement_id AND line_no = g.line_no LIMIT 1) l ON true
      LEFT JOIN LATERAL (
          SELECT ob.id, ob.id AS bill_id, NULL AS refund_id, ob.status, ob.paid_at AS occurred_at
            FROM bills ob WHERE g.kind = 'payment' AND ob.id = g.key
          UNION ALL
          SELECT orf.id, orf.bill_id, orf.id, orf.status, orf.finished_at
            FROM refunds orf WHERE g.kind = 'refund' AND orf.id = g.key
           LIMIT 1) p ON true
     WHERE g.outcome <> 'matched'
     ORDER BY g.kind, COALESCE(l.out_trade_no, p.bill_id), COALESCE(l.out_refund_no, p.refund_id)
)
UPDATE reconciliation_runs r
   SET matched_count = s.matched,
       matched_payment_fen = s.matched_payment,
       matched_refund_fen = s.matched_refund,
       channel_only_count = s.channel_only,
       platform_only_count = s.platform_only,
       amount_mismatch_count = s.amount_mismatch,
       status_mismatch_count = s.status_mismatch,
       open_count = s.differences,
       platform_payment_fen = s.platform_payment,
       platform_refund_fen = s.platform_refund,
       channel_payment_fen = st.payment_total_fen,
       channel_refund_fen = st.refund_total_fen,
       status = CASE WHEN s.differences > 0 THEN 'awaiting_resolution' ELSE 'balanced' END
  FROM (
    SELECT COALESCE(sum(numbers) FILTER (WHERE outcome = 'matched'), 0) AS matched,
           COALESCE(sum(p_amount) FILTER (WHERE outcome = 'matched' AND kind = 'payment'), 0) AS matched_payment,
           COALESCE(sum(p_amount) FILTER (WHERE outcome = 'matched' AND kind = 'refund'), 0) AS matched_refund,
           count(*) FILTER (WHERE outcome = 'channel_only') AS channel_only,
           count(*) FILTER (WHERE outcome = 'platform_only') AS platform_only,
           count(*) FILTER (WHERE outcome = 'amount_mismatch') AS amount_mismatch,
           count(*) FILTER (WHERE outcome = 'status_mismatch') AS status_mismatch,
           count(*) FILTER (WHERE outcome <> 'matched') AS differences,
           COALESCE(sum(p_amount) FILTER (WHERE kind = 'payment'), 0) AS platform_payment,
           COALESCE(sum(p_amount) FILTER (WHERE kind = 'refund'), 0) AS platform_refund
      FROM grouped
  ) s, channel_statements st
 WHERE r.id = :run_id AND st.id = :statement_id
"""
)

# 医保's counts and totals: the differences from the run's items; what agreed, and what the platform booked, as the
# check counted them.
_SUMMARISE_INSURANCE = text(
    """
UPDATE reconciliation_runs r
   SET matched_count = CAST(:matched AS integer),
       matched_payment_fen = CAST(:matched_fen AS bigint),
       channel_only_count = s.channel_only,
       platform_only_count = s.platform_only,
       amount_mismatch_count = s.amount_mismatch,
       status_mismatch_count = s.status_mismatch,
       open_count = s.open,
       platform_payment_fen = CAST(:booked_fen AS bigint),
       channel_payment_fen = CAST(:matched_fen AS bigint) + s.channel_payment,
       status = CASE WHEN s.open > 0 THEN 'awaiting_resolution' ELSE 'balanced' END
  FROM (
    SELECT count(*) FILTER (WHERE outcome = 'channel_only') AS channel_only,
           count(*) FILTER (WHERE outcome = 'platform_only') AS platform_only,
           count(*) FILTER (WHERE outcome = 'amount_mismatch') AS amount_mismatch,
           count(*) FILTER (WHERE outcome = 'status_mismatch') AS status_mismatch,
           count(*) FILTER (WHERE resolution_state = 'open') AS open,
           COALESCE(sum(channel_amount_fen), 0) AS channel_payment
      FROM reconciliation_items
     WHERE run_id = :run_id
  ) s
 WHERE r.id = :run_id
"""
)

# Bad debts: differences still open, of runs still waiting for finance (a superseded run's are replaced by its
# re-run's), where the hospital is short.
_OPEN_SHORTFALL = text(
    """
SELECT COALESCE(sum(i.shortfall_fen), 0) AS fen, count(*) AS items
  FROM reconciliation_items i JOIN reconciliation_runs r ON r.id = i.run_id
 WHERE r.status = 'awaiting_resolution' AND i.resolution_state = 'open' AND i.shortfall_fen > 0
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
        policy: ReconciliationPolicy = ReconciliationPolicy(),
    ) -> None:
        self._sessions = sessions
        # Payment adapters by channel name (what `bills.channel` holds), a campus's own as `campus_channel` names it.
        self._channels = channels
        self._insurance = insurance
        self._book = book
        self._insurance_groups = list(insurance_groups)
        self._policy = policy

    # --- runs (local activities) ---

    @activity.defn
    async def open_run(self, request: OpenRun) -> str:
        """The run of this round of the workflow, created once; runs of the day that an earlier execution left
        unfinished (e.g. it was terminated) are superseded by it."""
        async with self._sessions() as session, session.begin():
            # Serialises openings for one day, so two executions (one ending, one starting) cannot take one number.
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                {"key": f"reconciliation:{request.channel}:{request.campus or ''}:{request.bill_date}"},
            )
            existing = await session.scalar(
                _RUNS.select()
                .with_only_columns(_RUNS.c.id)
                .where(_RUNS.c.workflow_run_id == request.workflow_run_id, _RUNS.c.round == request.round)
            )
            if existing is not None:
                return str(existing)
            day = (
                (_RUNS.c.channel == request.channel)
                & (_RUNS.c.bill_date == request.bill_date)
                & _RUNS.c.campus.is_not_distinct_from(request.campus)
            )
            await session.execute(
                _RUNS.update()
                .where(day, _RUNS.c.status.in_((RunStatus.RUNNING, RunStatus.AWAITING_RESOLUTION)))
                .values(status=RunStatus.SUPERSEDED.value, finished_at=_now())
            )
            count = await session.scalar(_RUNS.select().with_only_columns(func.count()).where(day))
            scope = f"{request.channel}-{request.campus}" if request.campus else request.channel
            run_id = f"{scope}-{request.bill_date:%Y%m%d}-{int(count or 0) + 1}"
            await session.execute(
                insert(_RUNS).values(
                    id=run_id,
                    channel=request.channel,
                    campus=request.campus,
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
        """Download the day's statement and store its lines as the run's statement (a retry replaces them at once;
        another run downloads into its own, so every run keeps the lines its differences point at)."""
        channel = self._channels.get(campus_channel(request.channel, request.campus))
        if not isinstance(channel, StatementChannel):
            where = f"院区 {request.campus} 的" if request.campus else ""
            raise business_error("CHANNEL_NOT_RECONCILABLE", f"{where}支付渠道 {request.channel} 未配置或不提供对账单")
        try:
            lines = await channel.download_bill(bill_date=request.bill_date)
        except StatementNotReady as exc:
            raise not_ready(str(exc)) from exc
        except AdapterRefusal as refusal:
            if refusal.code in _NOT_READY_CODES:
                raise not_ready(refusal.message) from refusal
            raise business_error(refusal.code, refusal.message) from refusal
        statement_id = request.run_id
        rows = [_line_row(statement_id, number, line) for number, line in enumerate(lines, start=1)]
        mark_repeated(rows)
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
                .values(
                    id=statement_id,
                    channel=request.channel,
                    campus=request.campus,
                    bill_date=request.bill_date,
                    **totals,
                )
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
            for setting in _MATCH_SETTINGS:
                await session.execute(text(setting))
            await session.execute(_MATCH, self.match_params(run))
            await session.execute(
                _STATEMENTS.update().where(_STATEMENTS.c.id == run.statement_id).values(status="reconciled")
            )
            return await _summary(session, run_id)

    def match_params(self, run: Any) -> dict[str, Any]:
        """The matching statement's parameters for a run (a row of `reconciliation_runs`)."""
        day_start = datetime.combine(run.bill_date, time(), HOSPITAL_TZ)
        return {
            "run_id": run.id,
            "statement_id": run.statement_id,
            "channel": run.channel,
            # The bounds as values, not computed in the statement, so the planner can estimate the day's rows.
            "day_start": day_start,
            "day_end": day_start + timedelta(days=1),
            "campus": run.campus,
            "main_campus": self._policy.main_campus,
        }

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
        agreed: list[DailyCheckLine] = []  # counted and totalled on the run, not stored one by one
        for optins in dict.fromkeys(group.setl_optins for group in groups):
            ours = [entry.line for entry in booked if entry.group.setl_optins == optins]
            if optins not in unbalanced:
                agreed += [line for line in ours if not line.cancelled]
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
            for settlement in detail.lines:
                line = by_id.get(settlement.setl_id)
                outcome = _INSURANCE_OUTCOMES[settlement.outcome]
                if outcome is Outcome.MATCHED:
                    agreed += [line] if line is not None else []
                else:
                    items.append(
                        _insurance_item(request.run_id, line, outcome, setl_id=settlement.setl_id, memo=settlement.memo)
                    )
            if not detail.mismatches:
                # The totals differ and no settlement does: keep the difference in sight as one item per total.
                items += [
                    _insurance_total_item(request.run_id, group, description)
                    for group, description in unbalanced[optins]
                ]
        totals = {
            "run_id": request.run_id,
            "matched": len(agreed),
            "matched_fen": sum(line.total_fen for line in agreed),
            "booked_fen": sum(entry.line.total_fen for entry in booked if not entry.line.cancelled),
        }
        async with self._sessions() as session, session.begin():
            if await _locked_status(session, request.run_id) != RunStatus.RUNNING:  # another attempt got here first
                return await _summary(session, request.run_id)
            if items:
                await session.execute(insert(_ITEMS), items)
            await session.execute(_SUMMARISE_INSURANCE, totals)
            return await _summary(session, request.run_id)

    # --- bad debts (local activity) ---

    @activity.defn
    async def bad_debt_exposure(self) -> BadDebtExposure:
        """The open shortfalls across every current run, against the threshold that alerts finance and the admins."""
        async with self._sessions() as session:
            row = (await session.execute(_OPEN_SHORTFALL)).one()
        return BadDebtExposure(
            open_shortfall_fen=int(row.fen),
            open_items=int(row.items),
            threshold_fen=self._policy.bad_debt_threshold_fen,
            alert=list(self._policy.bad_debt_alert_to),
        )

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


def statement_channels(payment: Any, by_campus: Mapping[str, object]) -> dict[str, object]:
    """The payment adapters reconciliation downloads statements from: the channel's, and each campus's merchant's
    (`campus_channel` names them)."""
    name = str(payment.name)
    return {name: payment, **{campus_channel(name, code): channel for code, channel in by_campus.items()}}


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
        "repeated": False,  # see mark_repeated
    }


def number_key(kind: str, out_trade_no: str, out_refund_no: str | None, line_no: int) -> str:
    """The number a line is matched under, as the matching statement computes it."""
    if kind == ChannelBillLineKind.PAYMENT:
        return f"payment:{out_trade_no}"
    return f"refund:{out_refund_no}" if out_refund_no is not None else f"refund:#{line_no}"


def mark_repeated(rows: list[dict[str, Any]]) -> None:
    """Flag the rows whose number another row of the statement carries too."""
    keys = [number_key(r["kind"], r["out_trade_no"], r["out_refund_no"], r["line_no"]) for r in rows]
    seen = Counter(keys)
    for row, key in zip(rows, keys, strict=True):
        row["repeated"] = seen[key] > 1


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
    """A settlement 3202 disagrees on. Its source is our settlement record (the setl_id), where we have one."""
    ours = line.total_fen if line is not None else None
    return {
        "run_id": run_id,
        "kind": ItemKind.INSURANCE.value,
        "outcome": outcome.value,
        "out_trade_no": setl_id or (line.setl_id if line is not None else None),
        "transaction_id": line.mdtrt_id if line is not None else None,
        # 3202 answers per settlement without the platform's amounts.
        "platform_amount_fen": ours,
        "channel_status": memo,
        "line_count": 0 if outcome is Outcome.PLATFORM_ONLY else 1,
        "platform_record_id": line.setl_id if line is not None else None,
        # Settled in our books only: the fund's share the 医保 platform does not owe us is short.
        "shortfall_fen": line.fund_fen + line.account_fen
        if line is not None and outcome is Outcome.PLATFORM_ONLY
        else 0,
        "resolution_state": ResolutionState.OPEN.value,
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


async def _locked_status(session: AsyncSession, run_id: str) -> str | None:
    return await session.scalar(
        _RUNS.select().with_only_columns(_RUNS.c.status).where(_RUNS.c.id == run_id).with_for_update()
    )


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
        matched_payment_fen=run.matched_payment_fen,
        matched_refund_fen=run.matched_refund_fen,
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

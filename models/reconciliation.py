"""Daily reconciliation (对账, 8.4.3): a channel's statement for one Beijing-time day against the platform's records.

A payment channel's statement lines are matched against the platform's paid bills and succeeded refunds of that day;
医保 is checked with 3201 (totals) and, where they differ, 3202 (per settlement). Every difference becomes an item
that finance resolves; agreeing numbers are counted and totalled on the run. Outcomes are named from the platform's
side: `channel_only` is money the channel has and the platform does not (长款), `platform_only` the reverse (短款).
A hospital with several campuses (院区, each its own merchant) reconciles each campus's statement on its own.

These DTOs travel through workflows: no time or uuid default factories.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

# The pseudo-channel under which 医保 (3201/3202) is reconciled, beside the payment channels (`sandbox`, `wechatpay`,
# `alipay`: the payment adapter's name, which is also what `bills.channel` holds).
INSURANCE_CHANNEL = "insurance"


class ReconciliationStage(StrEnum):
    STARTED = "started"
    DOWNLOADING = "downloading"
    WAITING_STATEMENT = "waiting_statement"  # the channel has no statement yet; retried on a timer
    MATCHING = "matching"
    AWAITING_RESOLUTION = "awaiting_resolution"  # differences found; finance resolves them one by one
    DONE = "done"
    STATEMENT_UNAVAILABLE = "statement_unavailable"  # gave up waiting for the statement
    FAILED = "failed"  # the statement could not be used (e.g. unreadable); finance was told


class RunStatus(StrEnum):
    """`reconciliation_runs.status`."""

    RUNNING = "running"
    AWAITING_RESOLUTION = "awaiting_resolution"
    BALANCED = "balanced"  # no difference at all
    RESOLVED = "resolved"  # every difference resolved by finance
    SUPERSEDED = "superseded"  # a re-run replaced it
    STATEMENT_UNAVAILABLE = "statement_unavailable"
    FAILED = "failed"


class Outcome(StrEnum):
    MATCHED = "matched"
    CHANNEL_ONLY = "channel_only"  # 长款
    PLATFORM_ONLY = "platform_only"  # 短款
    AMOUNT_MISMATCH = "amount_mismatch"
    STATUS_MISMATCH = "status_mismatch"


class ItemKind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"
    INSURANCE = "insurance"  # one 医保 settlement (setl_id in out_trade_no) or one 3201 total that did not balance


class ResolutionState(StrEnum):
    NONE = "none"  # matched (items of runs from before differences alone were stored): nothing to resolve
    OPEN = "open"
    RESOLVED = "resolved"


class Resolution(StrEnum):
    """How finance settled a difference (差错账处理)."""

    CROSS_DAY = "cross_day"  # 跨日：对方次日入账，核对无误
    PLATFORM_CORRECTED = "platform_corrected"  # 平台已补记或更正
    CHANNEL_CORRECTED = "channel_corrected"  # 渠道已更正
    REFUNDED_TO_PAYER = "refunded_to_payer"  # 长款已退还付款人
    WRITTEN_OFF = "written_off"  # 经审批核销


class ReconcileInput(BaseModel):
    channel: str
    bill_date: date
    # The campus (院区) reconciled on its own, with its name for the notices; none for the whole hospital.
    campus: str | None = None
    campus_name: str | None = None
    # Business timings, in seconds, carried in the input so a running flow keeps the values it started with (and
    # tests can shorten them). WeChat Pay and Alipay publish a day's statement at about 10:00 the next day.
    retry_every_s: int = Field(default=30 * 60, gt=0)
    give_up_after_s: int = Field(default=3 * 24 * 3600, gt=0)
    remind_every_s: int = Field(default=24 * 3600, gt=0)


class DailyReconcileInput(BaseModel):
    """What the daily Schedule passes: the channel only. The day is yesterday in Beijing time, taken from the
    launching workflow's `workflow.now()`, because a Schedule's action has fixed arguments."""

    channel: str
    campus: str | None = None
    campus_name: str | None = None


class OpenRun(BaseModel):
    channel: str
    bill_date: date
    workflow_id: str
    workflow_run_id: str
    round: int = Field(ge=1)
    campus: str | None = None


class StatementRequest(BaseModel):
    run_id: str
    channel: str
    bill_date: date
    campus: str | None = None


class StatementSummary(BaseModel):
    statement_id: str
    line_count: int
    payment_total_fen: int
    refund_total_fen: int


class InsuranceCheckRequest(BaseModel):
    run_id: str
    bill_date: date
    # 3202 uploads a file and is keyed; both values come from the workflow so a retry sends the same messages.
    idempotency_key: str
    requested_at: datetime


class MatchSummary(BaseModel):
    run_id: str
    matched: int = 0
    matched_payment_fen: int = 0
    matched_refund_fen: int = 0
    channel_only: int = 0
    platform_only: int = 0
    amount_mismatch: int = 0
    status_mismatch: int = 0
    channel_payment_fen: int = 0
    channel_refund_fen: int = 0
    platform_payment_fen: int = 0
    platform_refund_fen: int = 0
    # The differences finance must resolve (ids of `reconciliation_items`).
    open_item_ids: list[int] = []

    @property
    def mismatches(self) -> int:
        return self.channel_only + self.platform_only + self.amount_mismatch + self.status_mismatch


class BadDebtExposure(BaseModel):
    """Differences still open across the current runs of every channel and campus where the hospital is short of
    money (短款 not yet recovered: the bad debts), against the alert threshold."""

    open_shortfall_fen: int
    open_items: int
    threshold_fen: int
    # Who is alerted when the threshold is passed (recipients as notices name them, e.g. `role:finance`).
    alert: list[str] = []

    @property
    def over(self) -> bool:
        return self.open_shortfall_fen > self.threshold_fen


class ResolveItem(BaseModel):
    item_id: int
    resolution: Resolution
    note: str = Field(min_length=1, max_length=500)
    resolved_by: str


class RecordResolution(BaseModel):
    run_id: str
    item_id: int
    resolution: Resolution
    note: str
    resolved_by: str
    resolved_at: datetime


class ResolutionResult(BaseModel):
    run_id: str
    item_id: int
    resolution: Resolution
    resolved_by: str
    resolved_at: datetime
    open_items: int


class RerunRequest(BaseModel):
    requested_by: str


class FinishRun(BaseModel):
    run_id: str
    status: RunStatus
    note: str | None = None


class ReconciliationState(BaseModel):
    channel: str
    bill_date: date
    campus: str | None = None
    stage: ReconciliationStage
    round: int = 0
    run_id: str | None = None
    download_attempts: int = 0
    last_error: str | None = None
    summary: MatchSummary | None = None
    open_items: int = 0


class InsuranceGroup(BaseModel):
    """What one 3201 总账 covers: one insurance type and clearing category at one clearing institution."""

    model_config = {"frozen": True}

    insutype: str
    clr_type: str
    setl_optins: str


# How finance reads them (exports, the printable overview).
OUTCOME_NAMES: dict[Outcome, str] = {
    Outcome.MATCHED: "相符",
    Outcome.CHANNEL_ONLY: "长款",
    Outcome.PLATFORM_ONLY: "短款",
    Outcome.AMOUNT_MISMATCH: "金额不符",
    Outcome.STATUS_MISMATCH: "状态不符",
}
KIND_NAMES: dict[ItemKind, str] = {ItemKind.PAYMENT: "支付", ItemKind.REFUND: "退款", ItemKind.INSURANCE: "医保"}
RESOLUTION_NAMES: dict[Resolution, str] = {
    Resolution.CROSS_DAY: "跨日，核对无误",
    Resolution.PLATFORM_CORRECTED: "平台已补记或更正",
    Resolution.CHANNEL_CORRECTED: "渠道已更正",
    Resolution.REFUNDED_TO_PAYER: "长款已退还付款人",
    Resolution.WRITTEN_OFF: "经审批核销",
}
RESOLUTION_STATE_NAMES: dict[ResolutionState, str] = {
    ResolutionState.NONE: "无需处理",
    ResolutionState.OPEN: "待处理",
    ResolutionState.RESOLVED: "已处理",
}
RUN_STATUS_NAMES: dict[RunStatus, str] = {
    RunStatus.RUNNING: "对账中",
    RunStatus.AWAITING_RESOLUTION: "差错待处理",
    RunStatus.BALANCED: "平账",
    RunStatus.RESOLVED: "差错已处理",
    RunStatus.SUPERSEDED: "已被重新对账取代",
    RunStatus.STATEMENT_UNAVAILABLE: "未取得对账单",
    RunStatus.FAILED: "对账失败",
}

"""Daily reconciliation (对账, 8.4.3) for finance: runs, their differences, resolving them, re-running a day.

Lists come from the tables the reconciliation activities write; resolving and re-running go to the day's
Reconciliation flow, which owns the run while it waits for finance.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlmodel import col

from api.auth import Actor, FinanceDep, require_roles
from api.deps import SessionDep, SettingsDep, TemporalDep
from api.errors import Problem, problem_responses
from api.idempotency import idempotent
from api.schemas.common import Limit, Offset, Page
from api.services.audit import audit
from api.services.reconciliation import check_day, day_progress, rerun_day, resolve_item
from models.common import Role
from models.reconciliation import (
    ItemKind,
    Outcome,
    ReconciliationState,
    Resolution,
    ResolutionResult,
    ResolutionState,
    RunStatus,
)
from models.tables import ReconciliationItem, ReconciliationRun
from workflows.reconciliation import reconciliation_workflow_id

router = APIRouter(prefix="/reconciliation", tags=["reconciliation"])

FinanceOrAdminDep = Annotated[Actor, Depends(require_roles(Role.FINANCE, Role.ADMIN))]
Channel = Annotated[
    str, Path(max_length=16, pattern=r"^[a-z0-9_]+$", description="渠道，如 wechatpay、alipay、insurance")
]


class RunOut(BaseModel):
    run_id: str
    channel: str
    bill_date: date
    round: int
    status: RunStatus
    matched: int
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


class ItemOut(BaseModel):
    item_id: int
    run_id: str
    kind: ItemKind
    outcome: Outcome
    out_trade_no: str | None
    out_refund_no: str | None
    transaction_id: str | None
    channel_amount_fen: int | None
    platform_amount_fen: int | None
    channel_status: str | None
    platform_status: str | None = Field(description="平台同一单号的记录状态（不限当日）")
    channel_occurred_at: datetime | None
    platform_occurred_at: datetime | None
    line_count: int
    resolution_state: ResolutionState
    resolution: Resolution | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolution_note: str | None


class ResolveIn(BaseModel):
    resolution: Resolution = Field(
        description="cross_day 跨日；platform_corrected 平台已更正；channel_corrected 渠道已更正；"
        "refunded_to_payer 已退还付款人；written_off 核销"
    )
    note: str = Field(min_length=1, max_length=500, examples=["次日 00:00:01 入账，跨日差异，核对无误"])


class RerunIn(BaseModel):
    channel: str = Field(max_length=16, examples=["wechatpay"])
    bill_date: date = Field(description="对账日（北京时间）")


class RerunOut(BaseModel):
    workflow_id: str
    started: bool = Field(description="true：新发起对账流程；false：已有流程，已要求其重新下载并核对")
    state: ReconciliationState | None


def _run_out(row: ReconciliationRun) -> RunOut:
    return RunOut(
        run_id=row.id,
        channel=row.channel,
        bill_date=row.bill_date,
        round=row.round,
        status=RunStatus(row.status),
        matched=row.matched_count,
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


def _item_out(row: ReconciliationItem) -> ItemOut:
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
        channel_status=row.channel_status,
        platform_status=row.platform_status,
        channel_occurred_at=row.channel_occurred_at,
        platform_occurred_at=row.platform_occurred_at,
        line_count=row.line_count,
        resolution_state=ResolutionState(row.resolution_state),
        resolution=Resolution(row.resolution) if row.resolution else None,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        resolution_note=row.resolution_note,
    )


async def _run(session: SessionDep, run_id: str) -> ReconciliationRun:
    run = await session.get(ReconciliationRun, run_id)
    if run is None:
        raise Problem(404, "NOT_FOUND", "未找到", f"对账批次 {run_id} 不存在")
    return run


@router.get("/runs", response_model=Page[RunOut], responses=problem_responses(401, 403, 422), summary="对账批次列表")
async def list_runs(
    actor: FinanceOrAdminDep,
    session: SessionDep,
    channel: Annotated[str | None, Query(max_length=16, description="渠道")] = None,
    bill_date: Annotated[date | None, Query(description="对账日（北京时间）")] = None,
    status: Annotated[RunStatus | None, Query(description="批次状态")] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[RunOut]:
    """Newest day first; within a day, the latest run first."""
    conditions = []
    if channel is not None:
        conditions.append(col(ReconciliationRun.channel) == channel)
    if bill_date is not None:
        conditions.append(col(ReconciliationRun.bill_date) == bill_date)
    if status is not None:
        conditions.append(col(ReconciliationRun.status) == status.value)
    total = await session.scalar(select(func.count()).select_from(ReconciliationRun).where(*conditions)) or 0
    rows = (
        await session.execute(
            select(ReconciliationRun)
            .where(*conditions)
            .order_by(col(ReconciliationRun.bill_date).desc(), col(ReconciliationRun.started_at).desc())
            .limit(limit)
            .offset(offset)
        )
    ).scalars()
    return Page(items=[_run_out(row) for row in rows], total=total, limit=limit, offset=offset)


@router.get("/runs/{run_id}", response_model=RunOut, responses=problem_responses(401, 403, 404), summary="对账批次")
async def get_run(run_id: str, actor: FinanceOrAdminDep, session: SessionDep) -> RunOut:
    return _run_out(await _run(session, run_id))


@router.get(
    "/runs/{run_id}/items",
    response_model=Page[ItemOut],
    responses=problem_responses(401, 403, 404, 422),
    summary="对账明细与差错账",
)
async def list_items(
    run_id: str,
    actor: FinanceOrAdminDep,
    session: SessionDep,
    outcome: Annotated[Outcome | None, Query(description="核对结果")] = None,
    state: Annotated[ResolutionState | None, Query(description="处理状态：open 待处理，resolved 已处理")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ItemOut]:
    await _run(session, run_id)
    conditions = [col(ReconciliationItem.run_id) == run_id]
    if outcome is not None:
        conditions.append(col(ReconciliationItem.outcome) == outcome.value)
    if state is not None:
        conditions.append(col(ReconciliationItem.resolution_state) == state.value)
    total = await session.scalar(select(func.count()).select_from(ReconciliationItem).where(*conditions)) or 0
    rows = (
        await session.execute(
            select(ReconciliationItem)
            .where(*conditions)
            .order_by(col(ReconciliationItem.id))
            .limit(limit)
            .offset(offset)
        )
    ).scalars()
    return Page(items=[_item_out(row) for row in rows], total=total, limit=limit, offset=offset)


@router.post(
    "/runs/{run_id}/items/{item_id}/resolution",
    response_model=ResolutionResult,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
    summary="处理差错账",
)
async def resolve(
    run_id: str,
    item_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    body: ResolveIn,
    request: Request,
    actor: FinanceDep,
    session: SessionDep,
    temporal: TemporalDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """Finance records how one difference of the current run was settled. 409 `RUN_NOT_OPEN` (the run ended, or a
    re-run superseded it), `ITEM_NOT_OPEN` (already resolved, or nothing to resolve)."""
    run = await _run(session, run_id)
    if run.status != RunStatus.AWAITING_RESOLUTION:
        raise Problem(409, "RUN_NOT_OPEN", "对账批次不在待处理状态", "该批次已结束或已被重新对账取代，请处理最新批次")
    item = await session.get(ReconciliationItem, item_id)
    if item is None or item.run_id != run_id:
        raise Problem(404, "NOT_FOUND", "未找到", f"对账批次 {run_id} 中没有差错 {item_id}")
    if item.resolution_state != ResolutionState.OPEN:
        raise Problem(409, "ITEM_NOT_OPEN", "差错账无需处理", "该条目已处理或核对相符")

    async def compute() -> tuple[int, dict]:
        # The Update id dedupes a retried request inside the flow as well.
        update_id = f"resolve-{item_id}-{idempotency_key}" if idempotency_key else None
        result = await resolve_item(
            temporal, run.channel, run.bill_date, item_id, body.resolution, body.note, actor, update_id
        )
        audit(
            session,
            actor,
            "reconciliation.resolve",
            "reconciliation_item",
            str(item_id),
            reason=body.note,
            detail={"run_id": run_id, "outcome": item.outcome, "resolution": body.resolution.value},
            request=request,
        )
        await session.commit()
        return 200, result.model_dump(mode="json")

    return await idempotent(request, actor, idempotency_key, compute)


@router.post(
    "/runs",
    status_code=202,
    response_model=RerunOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="发起或重新对账",
)
async def rerun(
    body: RerunIn,
    request: Request,
    actor: FinanceOrAdminDep,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """Reconcile a past day now: starts its flow, or asks the running one to download and match again (a run
    waiting for finance is superseded by a new run; what was resolved stays on record). 409 `DAY_NOT_OVER`,
    `RECONCILIATION_BUSY` (downloading or matching right now)."""
    check_day(settings, body.channel, body.bill_date)

    async def compute() -> tuple[int, dict]:
        started, state = await rerun_day(temporal, settings, body.channel, body.bill_date, actor)
        workflow_id = reconciliation_workflow_id(body.channel, body.bill_date)
        audit(
            session,
            actor,
            "reconciliation.rerun",
            "reconciliation_day",
            workflow_id,
            detail={"channel": body.channel, "bill_date": body.bill_date.isoformat(), "started": started},
            request=request,
        )
        await session.commit()
        return 202, RerunOut(workflow_id=workflow_id, started=started, state=state).model_dump(mode="json")

    return await idempotent(request, actor, idempotency_key, compute)


@router.get(
    "/days/{channel}/{bill_date}",
    response_model=ReconciliationState,
    responses=problem_responses(401, 403, 404, 422),
    summary="某日对账进度",
)
async def progress(channel: Channel, bill_date: date, actor: FinanceOrAdminDep, temporal: TemporalDep):
    """The day's flow as it stands: stage, current run, download attempts, open differences."""
    return await day_progress(temporal, channel, bill_date)

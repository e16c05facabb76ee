"""Daily reconciliation (对账, 8.4.3) for finance: runs, their differences and source lines, resolving them,
re-running a day, and a day's result to take away (CSV, XLSX, a printable overview as HTML or PDF).

Lists come from the tables the reconciliation activities write; resolving and re-running go to the day's
Reconciliation flow, which owns the run while it waits for finance. Finance staff have levels (models/permissions.py):
`reconciliation.read` sees and exports, `reconciliation.manage` resolves and re-runs, and writing a difference off
(a bad debt) also needs `reconciliation.write_off`.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, or_, select
from sqlmodel import col

from api.auth import Actor
from api.deps import ContextDep, SessionDep, SettingsDep, TemporalDep
from api.errors import Problem, problem_responses
from api.idempotency import idempotent
from api.permissions import holds, require_permission
from api.schemas.common import Limit, Offset, Page
from api.schemas.reconciliation import ItemOut, RunOut, SourceOut, item_out, line_out, run_out
from api.services.audit import audit
from api.services.reconciliation import check_day, day_progress, rerun_day, resolve_item
from api.services.reconciliation_overview import overview_html, overview_pdf
from api.services.reconciliation_reports import RunReport, csv_lines, load_report, xlsx_bytes
from models.permissions import PERMISSION_NAMES, Permission
from models.reconciliation import (
    Outcome,
    ReconciliationState,
    Resolution,
    ResolutionResult,
    ResolutionState,
    RunStatus,
)
from models.tables import ChannelStatementLine, ReconciliationItem, ReconciliationRun
from workflows.reconciliation import reconciliation_workflow_id

router = APIRouter(prefix="/reconciliation", tags=["reconciliation"])

ReaderDep = Annotated[Actor, Depends(require_permission(Permission.RECONCILIATION_READ))]
ManagerDep = Annotated[Actor, Depends(require_permission(Permission.RECONCILIATION_MANAGE))]
Channel = Annotated[
    str, Path(max_length=16, pattern=r"^[a-z0-9_]+$", description="渠道，如 wechatpay、alipay、insurance")
]
Campus = Annotated[
    str | None, Query(max_length=16, pattern=r"^[a-z0-9_]+$", description="院区代码；按院区分别对账时必填")
]
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ResolveIn(BaseModel):
    resolution: Resolution = Field(
        description="cross_day 跨日；platform_corrected 平台已更正；channel_corrected 渠道已更正；"
        "refunded_to_payer 已退还付款人；written_off 核销（需“核销坏账”权限）"
    )
    note: str = Field(min_length=1, max_length=500, examples=["次日 00:00:01 入账，跨日差异，核对无误"])


class RerunIn(BaseModel):
    channel: str = Field(max_length=16, examples=["wechatpay"])
    bill_date: date = Field(description="对账日（北京时间）")
    campus: str | None = Field(default=None, max_length=16, description="院区代码；按院区分别对账时必填")


class RerunOut(BaseModel):
    workflow_id: str
    started: bool = Field(description="true：新发起对账流程；false：已有流程，已要求其重新下载并核对")
    state: ReconciliationState | None


async def _run(session: SessionDep, run_id: str) -> ReconciliationRun:
    run = await session.get(ReconciliationRun, run_id)
    if run is None:
        raise Problem(404, "NOT_FOUND", "未找到", f"对账批次 {run_id} 不存在")
    return run


@router.get("/runs", response_model=Page[RunOut], responses=problem_responses(401, 403, 422), summary="对账批次列表")
async def list_runs(
    actor: ReaderDep,
    session: SessionDep,
    channel: Annotated[str | None, Query(max_length=16, description="渠道")] = None,
    campus: Campus = None,
    bill_date: Annotated[date | None, Query(description="对账日（北京时间）")] = None,
    status: Annotated[RunStatus | None, Query(description="批次状态")] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[RunOut]:
    """Newest day first; within a day, the latest run first."""
    conditions = []
    if channel is not None:
        conditions.append(col(ReconciliationRun.channel) == channel)
    if campus is not None:
        conditions.append(col(ReconciliationRun.campus) == campus)
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
    return Page(items=[run_out(row) for row in rows], total=total, limit=limit, offset=offset)


@router.get("/runs/{run_id}", response_model=RunOut, responses=problem_responses(401, 403, 404), summary="对账批次")
async def get_run(run_id: str, actor: ReaderDep, session: SessionDep) -> RunOut:
    return run_out(await _run(session, run_id))


@router.get(
    "/runs/{run_id}/items",
    response_model=Page[ItemOut],
    responses=problem_responses(401, 403, 404, 422),
    summary="差错账",
)
async def list_items(
    run_id: str,
    actor: ReaderDep,
    session: SessionDep,
    outcome: Annotated[Outcome | None, Query(description="核对结果")] = None,
    state: Annotated[ResolutionState | None, Query(description="处理状态：open 待处理，resolved 已处理")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ItemOut]:
    """The run's differences. Numbers on which both sides agree are counted on the run (`matched`), not listed."""
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
    return Page(items=[item_out(row) for row in rows], total=total, limit=limit, offset=offset)


async def _item(session: SessionDep, run_id: str, item_id: int) -> ReconciliationItem:
    item = await session.get(ReconciliationItem, item_id)
    if item is None or item.run_id != run_id:
        raise Problem(404, "NOT_FOUND", "未找到", f"对账批次 {run_id} 中没有差错 {item_id}")
    return item


ItemId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get(
    "/runs/{run_id}/items/{item_id}/source",
    response_model=SourceOut,
    responses=problem_responses(401, 403, 404, 422),
    summary="差错的来源：对账单原始行",
)
async def item_source(run_id: str, item_id: ItemId, actor: ReaderDep, session: SessionDep) -> SourceOut:
    """The statement lines behind a difference, as the channel's file had them: the line it names, and every other
    line of the run's statement under the same number (a repeated number)."""
    run = await _run(session, run_id)
    item = await _item(session, run_id, item_id)
    lines: list[ChannelStatementLine] = []
    if run.statement_id is not None and item.line_no is not None:
        number = (
            col(ChannelStatementLine.out_trade_no) == item.out_trade_no
            if item.kind == "payment"
            else col(ChannelStatementLine.out_refund_no) == item.out_refund_no
        )
        same_number = col(ChannelStatementLine.repeated) & number  # served by the index of repeated lines
        rows = await session.execute(
            select(ChannelStatementLine)
            .where(
                col(ChannelStatementLine.statement_id) == run.statement_id,
                or_(col(ChannelStatementLine.line_no) == item.line_no, same_number),
            )
            .order_by(col(ChannelStatementLine.line_no))
        )
        lines = list(rows.scalars())
    return SourceOut(item=item_out(item), lines=[line_out(line) for line in lines])


@router.post(
    "/runs/{run_id}/items/{item_id}/resolution",
    response_model=ResolutionResult,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
    summary="处理差错账",
)
async def resolve(
    run_id: str,
    item_id: ItemId,
    body: ResolveIn,
    request: Request,
    actor: ManagerDep,
    session: SessionDep,
    temporal: TemporalDep,
    ctx: ContextDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """Finance records how one difference of the current run was settled. Writing it off (`written_off`, a bad debt)
    also needs `reconciliation.write_off` (finance supervisors). 409 `RUN_NOT_OPEN` (the run ended, or a re-run
    superseded it), `ITEM_NOT_OPEN` (already resolved, or nothing to resolve)."""
    if body.resolution is Resolution.WRITTEN_OFF and not await holds(
        ctx.pg, actor, Permission.RECONCILIATION_WRITE_OFF
    ):
        name = PERMISSION_NAMES[Permission.RECONCILIATION_WRITE_OFF]
        raise Problem(
            403,
            "FORBIDDEN",
            "无权执行此操作",
            f"核销差错账需要“{name}”权限，请由财务主管处理。",
            permission=str(Permission.RECONCILIATION_WRITE_OFF),
        )
    run = await _run(session, run_id)
    if run.status != RunStatus.AWAITING_RESOLUTION:
        raise Problem(409, "RUN_NOT_OPEN", "对账批次不在待处理状态", "该批次已结束或已被重新对账取代，请处理最新批次")
    item = await _item(session, run_id, item_id)
    if item.resolution_state != ResolutionState.OPEN:
        raise Problem(409, "ITEM_NOT_OPEN", "差错账无需处理", "该条目已处理或核对相符")

    async def compute() -> tuple[int, dict]:
        # The Update id dedupes a retried request inside the flow as well.
        update_id = f"resolve-{item_id}-{idempotency_key}" if idempotency_key else None
        result = await resolve_item(
            temporal, run.channel, run.bill_date, run.campus, item_id, body.resolution, body.note, actor, update_id
        )
        audit(
            session,
            actor,
            "reconciliation.resolve",
            "reconciliation_item",
            str(item_id),
            reason=body.note,
            detail={
                "run_id": run_id,
                "outcome": item.outcome,
                "resolution": body.resolution.value,
                "shortfall_fen": item.shortfall_fen,
            },
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
    actor: ManagerDep,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """Reconcile a past day now: starts its flow, or asks the running one to download and match again (a run
    waiting for finance is superseded by a new run; what was resolved stays on record). 422 `UNKNOWN_CHANNEL`,
    `UNKNOWN_CAMPUS`; 409 `DAY_NOT_OVER`, `RECONCILIATION_BUSY` (downloading or matching right now)."""
    check_day(settings, body.channel, body.bill_date, body.campus)

    async def compute() -> tuple[int, dict]:
        started, state = await rerun_day(temporal, settings, body.channel, body.bill_date, body.campus, actor)
        workflow_id = reconciliation_workflow_id(body.channel, body.bill_date, body.campus)
        audit(
            session,
            actor,
            "reconciliation.rerun",
            "reconciliation_day",
            workflow_id,
            detail={
                "channel": body.channel,
                "campus": body.campus,
                "bill_date": body.bill_date.isoformat(),
                "started": started,
            },
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
async def progress(channel: Channel, bill_date: date, actor: ReaderDep, temporal: TemporalDep, campus: Campus = None):
    """The day's flow as it stands: stage, current run, download attempts, open differences."""
    return await day_progress(temporal, channel, bill_date, campus)


# --- a day's result to take away ---


async def _report(
    session: SessionDep, settings: SettingsDep, actor: Actor, request: Request, run_id: str, form: str
) -> RunReport:
    """The run's report, its export recorded in the audit log before it goes out."""
    report = await load_report(session, settings, run_id)
    audit(
        session,
        actor,
        "reconciliation.exported",
        "reconciliation_run",
        run_id,
        detail={"format": form, "differences": len(report.items)},
        request=request,
    )
    await session.commit()
    return report


def _attachment(report: RunReport, suffix: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="reconciliation-{report.run.run_id}.{suffix}"'}


@router.get(
    "/runs/{run_id}/export.csv",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "CSV（UTF-8，带 BOM）：每行一笔差错，含来源行号与平台单据"},
        **problem_responses(401, 403, 404),
    },
    summary="导出对账结果（CSV）",
)
async def export_csv(
    run_id: str, request: Request, actor: ReaderDep, session: SessionDep, settings: SettingsDep
) -> StreamingResponse:
    report = await _report(session, settings, actor, request, run_id, "csv")
    return StreamingResponse(
        csv_lines(report), media_type="text/csv; charset=utf-8", headers=_attachment(report, "csv")
    )


@router.get(
    "/runs/{run_id}/export.xlsx",
    response_class=Response,
    responses={
        200: {"content": {_XLSX: {}}, "description": "XLSX：“汇总”与“差错明细”两张工作表，金额单位为元"},
        **problem_responses(401, 403, 404),
    },
    summary="导出对账结果（XLSX）",
)
async def export_xlsx(
    run_id: str, request: Request, actor: ReaderDep, session: SessionDep, settings: SettingsDep
) -> Response:
    report = await _report(session, settings, actor, request, run_id, "xlsx")
    return Response(xlsx_bytes(report), media_type=_XLSX, headers=_attachment(report, "xlsx"))


@router.get(
    "/runs/{run_id}/overview.html",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}, **problem_responses(401, 403, 404)},
    summary="对账总览（可打印 HTML，含图表与差错清单）",
)
async def overview_page(
    run_id: str, request: Request, actor: ReaderDep, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    report = await _report(session, settings, actor, request, run_id, "html")
    return HTMLResponse(overview_html(report))


@router.get(
    "/runs/{run_id}/overview.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, **problem_responses(401, 403, 404)},
    summary="对账总览（PDF，含图表与差错清单）",
)
async def overview_document(
    run_id: str, request: Request, actor: ReaderDep, session: SessionDep, settings: SettingsDep
) -> Response:
    report = await _report(session, settings, actor, request, run_id, "pdf")
    return Response(overview_pdf(report), media_type="application/pdf", headers=_attachment(report, "pdf"))

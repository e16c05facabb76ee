"""The supervision data upload (8.6.6) for admins holding the institution permission: what the provincial platform
answered for each online revisit and prescription sent to it, and a day's upload started by hand (after records the
platform rejected were put right, or to send a day again). A Schedule uploads yesterday's and today's changes on its
own; each run is a `SupervisionUpload` flow (`supervise-{kind}-{yyyymmdd}`) in the Temporal UI."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request

from api.auth import Actor
from api.deps import ContextDep, SessionDep
from api.errors import problem_responses
from api.idempotency import idempotent
from api.permissions import require_permission
from api.schemas.common import Limit, Offset, Page, PeriodDep
from api.schemas.supervision import SupervisionDayOut, SupervisionRecordOut, UploadIn, UploadOut, UploadRunOut
from api.services import supervision
from api.services.audit import audit
from models.permissions import Permission
from models.supervision import SupervisionKind

router = APIRouter(prefix="/admin/supervision", tags=["supervision"])

ManagerDep = Annotated[Actor, Depends(require_permission(Permission.INSTITUTION_MANAGE))]


@router.get(
    "/days",
    response_model=list[SupervisionDayOut],
    responses=problem_responses(401, 403, 422),
    summary="监管数据上传：按日汇总",
)
async def list_days(actor: ManagerDep, session: SessionDep, period: PeriodDep) -> list[SupervisionDayOut]:
    """Per Beijing day and kind: records the platform accepted and rejected (each record counted on the day that last
    sent it). 422 `INVALID_PERIOD` for a period that ends before it starts or spans more than a year."""
    return await supervision.days(session, period.first, period.last)


@router.get(
    "/records",
    response_model=Page[SupervisionRecordOut],
    responses=problem_responses(401, 403, 422),
    summary="监管数据上传：记录明细",
)
async def list_records(
    actor: ManagerDep,
    session: SessionDep,
    day: Annotated[date | None, Query(description="上传所属日期（北京时间）")] = None,
    kind: SupervisionKind | None = None,
    status: Literal["accepted", "rejected"] | None = None,
    record_id: Annotated[str | None, Query(max_length=80, description="就诊号或处方号")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[SupervisionRecordOut]:
    """Rejected records first, each with the platform's reason; then the accepted ones."""
    total, items = await supervision.records(session, day, kind, status, record_id, limit, offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/uploads",
    response_model=list[UploadRunOut],
    responses=problem_responses(401, 403, 422),
    summary="监管数据上传：某日上传进度",
)
async def list_runs(
    actor: ManagerDep, ctx: ContextDep, day: Annotated[date, Query(description="日期（北京时间）")]
) -> list[UploadRunOut]:
    """Each kind's latest upload of the day: whether it runs, ended or never ran, and what it counted."""
    return await supervision.runs(ctx.temporal, day)


@router.post(
    "/uploads",
    status_code=202,
    response_model=UploadOut,
    responses=problem_responses(401, 403, 409, 422),
    summary="上传某日监管数据",
)
async def start_upload(
    body: UploadIn,
    request: Request,
    actor: ManagerDep,
    session: SessionDep,
    ctx: ContextDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """Uploads the records of the day that changed since the platform last received them (all of them with
    `resend`). 409 `SUPERVISION_UPLOAD_RUNNING` while that day's upload of a kind is under way; 422 `DAY_IN_FUTURE`.
    `GET /admin/supervision/records?day=…` shows the answers once the flows end."""

    async def compute() -> tuple[int, dict]:
        started = await supervision.upload(ctx.temporal, ctx.settings.task_queue, body, actor.user_id)
        audit(
            session,
            actor,
            "supervision.upload_requested",
            "supervision_day",
            body.day.isoformat(),
            detail={
                "kinds": [str(kind) for kind in body.kinds],
                "resend": body.resend,
                "workflows": started.workflow_ids,
            },
            request=request,
        )
        await session.commit()
        return 202, started.model_dump(mode="json")

    return await idempotent(request, actor, idempotency_key, compute)

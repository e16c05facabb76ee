"""The audit log for those who hold `audit.read`: query it, and export it as CSV (the export is itself audited)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from api.auth import Actor
from api.deps import ContextDep, SessionDep
from api.errors import problem_responses
from api.exports import BOM, csv_text
from api.permissions import require_permission
from api.schemas.common import Limit, Offset, Page
from api.schemas.security import AuditEventOut
from api.services.audit import audit
from models.common import HOSPITAL_TZ
from models.permissions import Permission
from models.tables import AuditEvent

router = APIRouter(prefix="/admin/audit-events", tags=["audit"])

AuditReaderDep = Annotated[Actor, Depends(require_permission(Permission.AUDIT_READ))]

_COLUMNS = (
    "id",
    "at",
    "actor_user_id",
    "action",
    "subject_type",
    "subject_id",
    "reason",
    "client_ip",
    "request_id",
    "detail",
)
# Rows fetched from the server-side cursor per round trip while exporting.
_EXPORT_BATCH = 500


class AuditFilter(BaseModel):
    actor: str | None = Field(default=None, max_length=40, description="操作者用户 ID")
    subject_type: str | None = Field(default=None, max_length=32, description="对象类型，如 user、patient、record")
    subject_id: str | None = Field(default=None, max_length=100, description="对象 ID")
    action: str | None = Field(
        default=None, max_length=64, description="操作，如 auth.login_failed；以 .* 结尾按前缀匹配，如 auth.*"
    )
    since: AwareDatetime | None = Field(default=None, description="起始时间（含），须带时区")
    until: AwareDatetime | None = Field(default=None, description="截止时间（不含），须带时区")

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.actor is not None:
            query = query.where(col(AuditEvent.actor_user_id) == self.actor)
        if self.subject_type is not None:
            query = query.where(col(AuditEvent.subject_type) == self.subject_type)
        if self.subject_id is not None:
            query = query.where(col(AuditEvent.subject_id) == self.subject_id)
        if self.action is not None and self.action.endswith(".*"):
            # A literal prefix: LIKE's own wildcards in what the caller typed match only themselves.
            query = query.where(col(AuditEvent.action).startswith(self.action[:-1], autoescape=True))
        elif self.action is not None:
            query = query.where(col(AuditEvent.action) == self.action)
        if self.since is not None:
            query = query.where(col(AuditEvent.at) >= self.since)
        if self.until is not None:
            query = query.where(col(AuditEvent.at) < self.until)
        return query

    def described(self) -> dict[str, str]:
        """The filters given, for the audit row of an export (ids, codes and times only)."""
        return self.model_dump(mode="json", exclude_none=True)


FilterDep = Annotated[AuditFilter, Query()]


@router.get(
    "",
    response_model=Page[AuditEventOut],
    responses=problem_responses(401, 403, 422),
    summary="查询审计日志",
)
async def list_events(
    filters: FilterDep, actor: AuditReaderDep, session: SessionDep, limit: Limit = 50, offset: Offset = 0
) -> Page[AuditEventOut]:
    """Newest first. Needs the `audit.read` permission."""
    total = (await session.execute(filters.apply(select(func.count()).select_from(AuditEvent)))).scalar_one()
    rows = (
        await session.execute(
            filters.apply(select(AuditEvent))
            .order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
            .limit(limit)
            .offset(offset)
        )
    ).scalars()
    items = [AuditEventOut.model_validate(row, from_attributes=True) for row in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


async def _export_lines(sessions: async_sessionmaker[AsyncSession], query: Select[Any]) -> AsyncIterator[str]:
    # A byte order mark, so spreadsheet software opens the Chinese text as UTF-8.
    yield BOM + csv_text([_COLUMNS])
    # Its own session: the request's session is closed before a streamed body is sent.
    async with sessions() as session:
        result = await session.stream(query.execution_options(yield_per=_EXPORT_BATCH))
        async for batch in result.partitions():
            yield csv_text(batch)


@router.get(
    "/export",
    responses={
        200: {"content": {"text/csv": {}}, "description": "CSV（UTF-8，带 BOM），按时间先后排列"},
        **problem_responses(401, 403, 422),
    },
    response_class=StreamingResponse,
    summary="导出审计日志（CSV）",
)
async def export_events(
    filters: FilterDep, request: Request, actor: AuditReaderDep, session: SessionDep, ctx: ContextDep
) -> StreamingResponse:
    """Every matching event, oldest first, streamed. The export is recorded in the audit log before it starts,
    with the filters used. Needs the `audit.read` permission."""
    audit(session, actor, "audit.exported", "audit_log", "audit_events", detail=filters.described(), request=request)
    await session.commit()
    columns = [getattr(AuditEvent, name) for name in _COLUMNS]
    query = filters.apply(select(*columns)).order_by(col(AuditEvent.id))
    stamp = datetime.now(HOSPITAL_TZ).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        _export_lines(ctx.sessions, query),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="audit-events-{stamp}.csv"'},
    )

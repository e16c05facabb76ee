"""The drug catalogue (药品目录管理, 8.6.2): doctors, pharmacists and admins read it; pharmacists holding
`catalog.maintain` propose additions, changes, disabling and enabling; a pharmacist holding `catalog.approve`, other
than the proposer, approves (published at once) or rejects each (`CatalogChange` flow). Every change stays on record
with the entry as it was before."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from sqlalchemy import or_, select
from sqlmodel import col

from api.auth import Actor, require_roles
from api.deps import ContextDep, SessionDep
from api.errors import Problem, problem_responses
from api.idempotency import idempotent
from api.permissions import role_with_permission
from api.queries.listing import count_rows
from api.schemas.catalog import ChangeIn, ChangeOut, DecisionIn, HerbOut
from api.schemas.common import Limit, Offset, Page
from api.services import catalog
from api.services.access import not_found
from api.services.audit import audit
from api.services.temporal_calls import workflow_call
from models.catalog import CatalogDecision, ChangeStatus
from models.common import Role
from models.permissions import Permission
from models.tables import CatalogChange, Herb
from workflows.catalog import CatalogChangeWorkflow, catalog_workflow_id

router = APIRouter(prefix="/catalog", tags=["catalog"])

ReaderDep = Annotated[Actor, Depends(require_roles(Role.DOCTOR, Role.PHARMACIST, Role.ADMIN))]
MaintainerDep = Annotated[Actor, Depends(role_with_permission(Role.PHARMACIST, Permission.CATALOG_MAINTAIN))]
ApproverDep = Annotated[Actor, Depends(role_with_permission(Role.PHARMACIST, Permission.CATALOG_APPROVE))]
ChangeId = Annotated[str, Path(max_length=40)]


@router.get("/herbs", response_model=Page[HerbOut], responses=problem_responses(401, 403, 422), summary="药品目录")
async def list_herbs(
    actor: ReaderDep,
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=40, description="通用名、拼音或药品代码")] = None,
    include_disabled: bool = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[HerbOut]:
    """By name; disabled entries only when asked for."""
    query = select(Herb)
    if not include_disabled:
        query = query.where(col(Herb.active))
    if q:
        pattern = f"%{q}%"
        query = query.where(
            or_(
                col(Herb.name).like(pattern, escape="\\"),
                col(Herb.pinyin).ilike(pattern, escape="\\"),
                col(Herb.code) == q,
            )
        )
    total = await count_rows(session, query)
    rows = await session.scalars(query.order_by(col(Herb.name)).limit(limit).offset(offset))
    return Page(items=[HerbOut.model_validate(row) for row in rows], total=total, limit=limit, offset=offset)


@router.post(
    "/changes",
    status_code=201,
    response_model=ChangeOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="提交药品目录变更",
)
async def propose_change(
    body: ChangeIn,
    request: Request,
    actor: MaintainerDep,
    session: SessionDep,
    ctx: ContextDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """Waits for a senior pharmacist's review. 409 `HERB_EXISTS`, `NO_CHANGE`, `CODE_TAKEN`, `CHANGE_PENDING` (one
    change per entry at a time); 422 `NOT_LISTABLE` for narcotic, psychotropic or banned materials."""

    async def compute() -> tuple[int, dict]:
        row = await catalog.propose(session, ctx.temporal, ctx.settings.task_queue, actor, body)
        audit(
            session,
            actor,
            "catalog.change_proposed",
            "catalog_change",
            row.id,
            detail=body.model_dump(mode="json"),
            request=request,
        )
        await session.commit()
        return 201, ChangeOut.model_validate(row).model_dump(mode="json")

    return await idempotent(request, actor, idempotency_key, compute)


@router.get(
    "/changes",
    response_model=Page[ChangeOut],
    responses=problem_responses(401, 403, 422),
    summary="药品目录变更记录",
)
async def list_changes(
    actor: ReaderDep,
    session: SessionDep,
    status: ChangeStatus | None = None,
    herb_name: Annotated[str | None, Query(max_length=40)] = None,
    order: Literal["newest", "oldest"] = "newest",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ChangeOut]:
    """The record of every change (留痕); `status=pending&order=oldest` is the review queue."""
    query = select(CatalogChange)
    if status is not None:
        query = query.where(col(CatalogChange.status) == status)
    if herb_name is not None:
        query = query.where(col(CatalogChange.herb_name) == herb_name)
    total = await count_rows(session, query)
    created = col(CatalogChange.created_at)
    ordered = query.order_by(created.asc() if order == "oldest" else created.desc(), col(CatalogChange.id))
    rows = await session.scalars(ordered.limit(limit).offset(offset))
    return Page(items=[ChangeOut.model_validate(row) for row in rows], total=total, limit=limit, offset=offset)


@router.post(
    "/changes/{change_id}/decision",
    response_model=ChangeOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="审核药品目录变更",
)
async def decide_change(
    change_id: ChangeId, body: DecisionIn, request: Request, actor: ApproverDep, session: SessionDep, ctx: ContextDep
) -> ChangeOut:
    """Approval publishes the change at once. 409 `SAME_PHARMACIST` for the proposer, `CHANGE_DECIDED` once decided,
    `CATALOG_CONFLICT` when the catalogue moved meanwhile (the change then waits for a rejection)."""
    row = await session.get(CatalogChange, change_id)
    if row is None:
        raise not_found("药品目录变更")
    if row.status != ChangeStatus.PENDING:
        raise Problem(409, "CHANGE_DECIDED", "该变更已审核", "该变更已审核。", current_status=row.status)
    handle = ctx.temporal.get_workflow_handle(catalog_workflow_id(change_id))
    decision = CatalogDecision(approver_user_id=actor.user_id, approve=body.approve, note=body.note)
    await workflow_call(handle.execute_update(CatalogChangeWorkflow.decide, decision), missing="变更的审核流程不存在")
    action = "catalog.change_published" if body.approve else "catalog.change_rejected"
    audit(session, actor, action, "catalog_change", change_id, detail=body.model_dump(), request=request)
    await session.commit()
    await session.refresh(row)
    return ChangeOut.model_validate(row)

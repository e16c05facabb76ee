"""The drug catalogue (8.6.2): what may be proposed, and the start of each change's review flow."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import Client

from activities.rules.engine import default_engine
from api.auth import Actor
from api.errors import Problem
from api.schemas.catalog import ChangeIn
from models.catalog import CatalogChangeInput, ChangeKind
from models.prescription import CheckRequest, PatientFacts, RxItem
from models.tables import CatalogChange, Herb
from workflows.catalog import CatalogChangeWorkflow, catalog_workflow_id

# What the rule engine says of a material that may never be listed for online prescribing (8.6.2.2).
_NOT_LISTABLE = {"BANNED_ONLINE", "BANNED_SUBSTANCE"}


def not_listable(name: str) -> str | None:
    """Why `name` may not be in the online catalogue (narcotic, psychotropic or banned), as the engine says."""
    probe = CheckRequest(
        patient=PatientFacts(age_years=40, sex="male"), items=[RxItem(herb=name, dose_g=1)], doses=1, online=True
    )
    for finding in default_engine().check(probe).findings:
        if finding.code in _NOT_LISTABLE:
            return finding.message
    return None


async def propose(
    session: AsyncSession, temporal: Client, task_queue: str, actor: Actor, body: ChangeIn
) -> CatalogChange:
    """Record the proposal and start its review flow; 409 `CHANGE_PENDING` while another change of the entry waits."""
    if body.kind in (ChangeKind.ADD, ChangeKind.ENABLE) and (why := not_listable(body.herb_name)):
        raise Problem(422, "NOT_LISTABLE", "不能列入药品目录", why, herb=body.herb_name)
    herb = await session.get(Herb, body.herb_name)
    if body.kind is ChangeKind.ADD and herb is not None:
        raise Problem(409, "HERB_EXISTS", "饮片已在目录中", f"药品目录中已有{body.herb_name}，请提交变更。")
    if body.kind is not ChangeKind.ADD and herb is None:
        raise Problem(404, "NOT_FOUND", "未找到", f"药品目录中没有{body.herb_name}")
    if herb is not None and body.kind in (ChangeKind.DISABLE, ChangeKind.ENABLE):
        if herb.active == (body.kind is ChangeKind.ENABLE):
            state = "启用" if herb.active else "禁用"
            raise Problem(409, "NO_CHANGE", "无需变更", f"{body.herb_name}已是{state}状态。")
    code = body.fields.code
    if code is not None and await session.scalar(
        select(col(Herb.name)).where(col(Herb.code) == code, col(Herb.name) != body.herb_name)
    ):
        raise Problem(409, "CODE_TAKEN", "药品代码已被使用", f"药品代码 {code} 已被其他饮片使用。")
    change_id = f"cc-{secrets.token_hex(8)}"
    created = await session.scalar(
        insert(CatalogChange)
        .values(
            id=change_id,
            kind=body.kind.value,
            herb_name=body.herb_name,
            fields=body.fields.model_dump(mode="json", exclude_none=True),
            reason=body.reason,
            proposed_by=actor.ref,
            status="pending",
        )
        .on_conflict_do_nothing(index_elements=["herb_name"], index_where=col(CatalogChange.status) == "pending")
        .returning(col(CatalogChange.id))
    )
    if created is None:
        raise Problem(
            409, "CHANGE_PENDING", "已有待审核的变更", f"{body.herb_name}已有一项变更等待审核，审核后再提交。"
        )
    await temporal.start_workflow(
        CatalogChangeWorkflow.run,
        CatalogChangeInput(
            change_id=change_id,
            herb_name=body.herb_name,
            kind=body.kind,
            proposer_id=actor.ref or "",
            proposer_user_id=actor.user_id,
            summary=body.reason,
        ),
        id=catalog_workflow_id(change_id),
        task_queue=task_queue,
    )
    await session.commit()
    row = await session.get(CatalogChange, change_id)
    assert row is not None
    return row

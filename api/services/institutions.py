"""The institution's details and their registration with the supervision platform (8.5.4).

The details are plain reference data the admins keep; submitting them starts the `InstitutionRegistration` flow,
which talks to the platform. Details can change only while nothing is under review (a draft, or after a rejection).
An approved (or suspended) institution can be looked up again on the platform: the `InstitutionReverification` flow.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from api.errors import Problem
from api.schemas.institutions import (
    InstitutionIn,
    InstitutionOut,
    RegistrationOut,
    ReverificationOut,
    ReverificationRecordOut,
)
from models.institution import InstitutionInput, InstitutionStatus, ReverificationInput, Verification
from models.tables import Institution, InstitutionReverification
from workflows.institution import (
    InstitutionRegistrationWorkflow,
    InstitutionReverificationWorkflow,
    institution_workflow_id,
    reverification_workflow_id,
)

_EDITABLE = frozenset({InstitutionStatus.DRAFT, InstitutionStatus.REJECTED})
# What the platform once approved: what can be looked up again.
_REVERIFIABLE = frozenset({InstitutionStatus.APPROVED, InstitutionStatus.SUSPENDED})


def view(row: Institution) -> InstitutionOut:
    return InstitutionOut(
        id=row.id,
        code=row.code,
        name=row.name,
        kind=row.kind,
        licence_no=row.licence_no,
        access_ips=row.access_ips,
        status=InstitutionStatus(row.status),
        attempt=row.attempt,
        platform_ref=row.platform_ref,
        reason=row.reason,
        submitted_at=row.submitted_at,
        decided_at=row.decided_at,
        verification=None if row.verification is None else Verification.model_validate(row.verification),
        verified_at=row.verified_at,
        suspended_at=row.suspended_at,
        created_at=row.created_at,
    )


async def _code_taken(session: AsyncSession, code: str, other_than: str | None = None) -> None:
    holder = await session.scalar(select(col(Institution.id)).where(col(Institution.code) == code))
    if holder is not None and holder != other_than:
        raise Problem(409, "INSTITUTION_EXISTS", "机构编号已登记", f"机构编号 {code} 已有登记记录。")


async def create(session: AsyncSession, body: InstitutionIn, created_by: str) -> Institution:
    await _code_taken(session, body.code)
    row = Institution(id=f"inst-{uuid.uuid4().hex[:12]}", created_by=created_by, **body.model_dump())
    session.add(row)
    await session.flush()
    return row


async def get(session: AsyncSession, institution_id: str, *, for_update: bool = False) -> Institution:
    row = await session.get(Institution, institution_id, with_for_update=for_update)
    if row is None:
        raise Problem(404, "NOT_FOUND", "未找到", "机构登记记录不存在。")
    return row


async def listing(session: AsyncSession) -> list[Institution]:
    return list((await session.execute(select(Institution).order_by(col(Institution.created_at)))).scalars())


def _refuse_unless_editable(row: Institution) -> None:
    if InstitutionStatus(row.status) not in _EDITABLE:
        raise Problem(
            409,
            "INSTITUTION_NOT_EDITABLE",
            "登记信息当前不可修改",
            "登记申请审核中或已获批准，不能修改或重复提交。",
            current_status=row.status,
        )


async def edit(
    session: AsyncSession, institution_id: str, body: InstitutionIn
) -> tuple[Institution, dict[str, object]]:
    row = await get(session, institution_id, for_update=True)
    _refuse_unless_editable(row)
    await _code_taken(session, body.code, other_than=row.id)
    changes = {name: value for name, value in body.model_dump().items() if getattr(row, name) != value}
    for name, value in changes.items():
        setattr(row, name, value)
    return row, changes


async def submit(
    session: AsyncSession, temporal: Client, task_queue: str, institution_id: str, poll_every_s: int
) -> RegistrationOut:
    """Submit (again, after a rejection) and start the flow; commits first, so the flow reads this submission."""
    row = await get(session, institution_id, for_update=True)
    if InstitutionStatus(row.status) is not InstitutionStatus.SUBMITTED:
        _refuse_unless_editable(row)
        row.attempt += 1
        row.status = str(InstitutionStatus.SUBMITTED)
        row.submitted_at = datetime.now(UTC)
        row.platform_ref = row.reason = row.decided_at = row.verification = row.verified_at = None
        await session.commit()
        await session.refresh(row)
    workflow_id = institution_workflow_id(row.id)
    # Submitted already: asking again only starts the flow if it could not be started the first time.
    await temporal.start_workflow(
        InstitutionRegistrationWorkflow.run,
        InstitutionInput(institution_id=row.id, attempt=row.attempt, poll_every_s=poll_every_s),
        id=workflow_id,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=task_queue,
    )
    return RegistrationOut(
        institution_id=row.id, status=InstitutionStatus(row.status), attempt=row.attempt, workflow_id=workflow_id
    )


async def reverify(
    session: AsyncSession, temporal: Client, task_queue: str, institution_id: str, requested_by: str
) -> ReverificationOut:
    """Look an approved or suspended institution up on the platform again (409 `INSTITUTION_NOT_APPROVED` for any
    other), in a flow of its own (a retried request gets the first answer through its Idempotency-Key)."""
    row = await get(session, institution_id)
    if InstitutionStatus(row.status) not in _REVERIFIABLE:
        raise Problem(
            409,
            "INSTITUTION_NOT_APPROVED",
            "机构尚未获批",
            "只有已获监管平台批准（或因核验未通过而暂停）的机构才能重新核验。",
            current_status=row.status,
        )
    workflow_id = reverification_workflow_id(row.id, secrets.token_hex(6))
    await temporal.start_workflow(
        InstitutionReverificationWorkflow.run,
        ReverificationInput(institution_ids=[row.id], requested_by=requested_by),
        id=workflow_id,
        task_queue=task_queue,
    )
    return ReverificationOut(institution_id=row.id, status=InstitutionStatus(row.status), workflow_id=workflow_id)


async def reverifications(session: AsyncSession, institution_id: str) -> list[ReverificationRecordOut]:
    """The institution's re-verifications, newest first."""
    await get(session, institution_id)
    rows = await session.execute(
        select(InstitutionReverification)
        .where(col(InstitutionReverification.institution_id) == institution_id)
        .order_by(col(InstitutionReverification.checked_at).desc(), col(InstitutionReverification.id))
    )
    return [ReverificationRecordOut.model_validate(row, from_attributes=True) for row in rows.scalars()]

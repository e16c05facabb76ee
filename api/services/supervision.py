"""The supervision upload as the admins see it: records' answers by day, and uploads of a day started by hand."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import case, col
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import Problem
from api.queries.listing import count_rows
from api.schemas.supervision import SupervisionDayOut, SupervisionRecordOut, UploadIn, UploadOut, UploadRunOut
from models.common import HOSPITAL_TZ
from models.supervision import SupervisionKind, SupervisionUploadInput, SupervisionUploadResult, UploadTotals
from models.tables import SupervisionRecordState
from workflows.supervision import SupervisionUploadWorkflow, supervision_workflow_id

_RECORD = SupervisionRecordState


async def days(session: AsyncSession, since: date, until: date) -> list[SupervisionDayOut]:
    """Per day and kind, newest day first: how many records the platform holds and how many it rejected."""
    rejected = func.count().filter(col(_RECORD.status) == "rejected")
    rows = await session.execute(
        select(
            col(_RECORD.day),
            col(_RECORD.kind),
            (func.count() - rejected).label("accepted"),
            rejected.label("rejected"),
            func.max(col(_RECORD.uploaded_at)).label("last_uploaded_at"),
        )
        .where(col(_RECORD.day) >= since, col(_RECORD.day) <= until)
        .group_by(col(_RECORD.day), col(_RECORD.kind))
        .order_by(col(_RECORD.day).desc(), col(_RECORD.kind))
    )
    return [SupervisionDayOut.model_validate(row, from_attributes=True) for row in rows]


async def records(
    session: AsyncSession,
    day: date | None,
    kind: SupervisionKind | None,
    status: str | None,
    record_id: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[SupervisionRecordOut]]:
    """Rejected records first, then by id."""
    query = select(_RECORD)
    for column, value in (
        (_RECORD.day, day),
        (_RECORD.kind, kind),
        (_RECORD.status, status),
        (_RECORD.record_id, record_id),
    ):
        if value is not None:
            query = query.where(col(column) == value)
    total = await count_rows(session, query)
    rows = await session.execute(
        query.order_by(case((col(_RECORD.status) == "rejected", 0), else_=1), col(_RECORD.kind), col(_RECORD.record_id))
        .limit(limit)
        .offset(offset)
    )
    return total, [SupervisionRecordOut.model_validate(row) for row in rows.scalars()]


async def upload(temporal: Client, task_queue: str, body: UploadIn, requested_by: str) -> UploadOut:
    """Start the day's upload of each kind asked for; 409 `SUPERVISION_UPLOAD_RUNNING` while one is under way (the
    ones started before it stay started: asking again starts only those that are not running)."""
    if body.day > datetime.now(HOSPITAL_TZ).date():
        raise Problem(422, "DAY_IN_FUTURE", "日期无效", "不能上传今天之后的日期。", day=body.day.isoformat())
    started, running = [], []
    for kind in dict.fromkeys(body.kinds):
        workflow_id = supervision_workflow_id(kind, body.day)
        try:
            await temporal.start_workflow(
                SupervisionUploadWorkflow.run,
                SupervisionUploadInput(kind=kind, day=body.day, resend=body.resend, requested_by=requested_by),
                id=workflow_id,
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            )
            started.append(workflow_id)
        except WorkflowAlreadyStartedError:
            running.append(workflow_id)
    if running:
        raise Problem(
            409,
            "SUPERVISION_UPLOAD_RUNNING",
            "该日数据正在上传",
            "该日数据的上传尚未结束，请稍后再试。",
            running=running,
            started=started,
        )
    return UploadOut(day=body.day, workflow_ids=started)


async def runs(temporal: Client, day: date) -> list[UploadRunOut]:
    """Each kind's latest upload of the day, as Temporal has it."""
    answers = []
    for kind in SupervisionKind:
        workflow_id = supervision_workflow_id(kind, day)
        handle = temporal.get_workflow_handle_for(SupervisionUploadWorkflow.run, workflow_id)
        try:
            described = await handle.describe()
        except RPCError as failure:
            if failure.status is not RPCStatusCode.NOT_FOUND:
                raise
            answers.append(UploadRunOut(kind=kind, workflow_id=workflow_id, status="none"))
            continue
        totals: UploadTotals | None = None
        # A running upload's counts so far are its `progress` query in the Temporal UI: a query needs a worker, and
        # this answer should not wait for one.
        if described.status is WorkflowExecutionStatus.COMPLETED:
            result: SupervisionUploadResult = await handle.result()
            totals = result.totals
        status = described.status.name.lower() if described.status is not None else "running"
        answers.append(
            UploadRunOut(
                kind=kind,
                workflow_id=workflow_id,
                status=status,
                totals=totals,
                started_at=described.start_time,
                closed_at=described.close_time,
            )
        )
    return answers

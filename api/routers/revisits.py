"""Revisit checks (复诊预判, 8.1.2): may I follow up this disease online?"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import col
from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from api.auth import PatientDep
from api.consents import require_consents
from api.deps import SessionDep, SettingsDep, TemporalDep
from api.errors import Problem, problem_responses
from api.services.temporal_calls import workflow_call
from models.revisit import RevisitCheckInput, RevisitDecision
from models.tables import Disease, RevisitEligibility
from workflows.revisit import RevisitCheckWorkflow, revisit_workflow_id

router = APIRouter(prefix="/revisit-checks", tags=["revisit"])


class RevisitCheckIn(BaseModel):
    disease_code: str = Field(min_length=1, max_length=32, examples=["TCM-PW-001"])


@router.post(
    "",
    response_model=RevisitDecision,
    responses=problem_responses(401, 403, 404, 422),
    summary="复诊预判",
)
async def check_revisit(
    body: RevisitCheckIn, actor: PatientDep, session: SessionDep, temporal: TemporalDep, settings: SettingsDep
) -> RevisitDecision:
    """Ask HIS whether this disease was diagnosed at an offline visit of this hospital within the window.

    The answer comes back in the same request. While an earlier eligible decision is still valid it is returned as is.
    """
    patient_id = actor.ref or ""
    await require_consents(session, patient_id)
    if await session.get(Disease, body.disease_code) is None:
        raise Problem(404, "NOT_FOUND", "病种不存在", f"病种 {body.disease_code} 不存在")
    check = RevisitCheckInput(
        patient_id=patient_id,
        disease_code=body.disease_code,
        window_days=settings.revisit_window_days,
        valid_days=settings.revisit_eligibility_days,
    )
    start = WithStartWorkflowOperation(
        RevisitCheckWorkflow.run,
        check,
        id=revisit_workflow_id(patient_id, body.disease_code),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=settings.task_queue,
    )
    return await workflow_call(
        temporal.execute_update_with_start_workflow(RevisitCheckWorkflow.decision, start_workflow_operation=start)
    )


@router.get("", response_model=list[RevisitDecision], responses=problem_responses(401, 403), summary="我的复诊资格")
async def my_eligibility(actor: PatientDep, session: SessionDep) -> list[RevisitDecision]:
    rows = (
        await session.execute(select(RevisitEligibility).where(col(RevisitEligibility.patient_id) == actor.ref))
    ).scalars()
    return [
        RevisitDecision(
            patient_id=row.patient_id,
            disease_code=row.disease_code,
            disease_name=row.disease_name,
            status=row.status,
            evidence=row.evidence,
            decided_at=row.decided_at,
            valid_until=row.valid_until,
            reason=row.reason,
        )
        for row in rows
    ]

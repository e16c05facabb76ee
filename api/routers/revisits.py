"""Revisit checks (复诊预判, 8.1.2): may I follow up this disease online?"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import col

from api.auth import PatientDep
from api.consents import require_consents
from api.deps import SessionDep, SettingsDep, TemporalDep
from api.errors import Problem, problem_responses
from api.services.revisit_checks import stored_decision, tell_revisit_check
from models.revisit import RevisitDecision
from models.tables import Disease, RevisitEligibility
from workflows.revisit import RevisitCheckWorkflow

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
    return await tell_revisit_check(temporal, settings, patient_id, body.disease_code, RevisitCheckWorkflow.decision)


@router.get("", response_model=list[RevisitDecision], responses=problem_responses(401, 403), summary="我的复诊资格")
async def my_eligibility(actor: PatientDep, session: SessionDep) -> list[RevisitDecision]:
    rows = (
        await session.execute(select(RevisitEligibility).where(col(RevisitEligibility.patient_id) == actor.ref))
    ).scalars()
    return [stored_decision(row) for row in rows]

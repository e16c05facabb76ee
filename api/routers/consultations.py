"""Multi-doctor consultation (会诊, 8.2.3.5): the visit's doctor invites other doctors into the consult. An invited
doctor sees the visit and the patient's preview, joins the chat and calls, signs an opinion and may prescribe
(`POST /visits/{visit_id}/prescriptions`); the visit's own doctor writes the record and finishes."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.auth import ActorDep, DoctorDep
from api.deps import ContextDep, SessionDep, TemporalDep
from api.errors import problem_responses
from api.schemas.doctor_day import ConsultantOut, InviteIn, OpinionIn
from api.services.access import visible_visit
from api.services.consultations import consultants_of
from api.services.temporal_calls import workflow_call
from models.consultation import GiveOpinion, InviteConsultant
from models.visit import VisitState
from workflows.visit import VisitWorkflow, visit_workflow_id

router = APIRouter(tags=["consultations"])


@router.post(
    "/visits/{visit_id}/consultants",
    response_model=VisitState,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="邀请会诊",
)
async def invite(
    visit_id: str, body: InviteIn, actor: DoctorDep, session: SessionDep, temporal: TemporalDep
) -> VisitState:
    """The visit's doctor, in consult, invites another doctor, who is notified on every channel. 409
    `VISIT_NOT_IN_CONSULT`, `ALREADY_INVITED`, `TOO_MANY_CONSULTANTS`, `CONSULTANT_IS_ATTENDING`,
    `CONSULTANT_NOT_FOUND`, `CONSULTANT_INACTIVE`; 403 for an invited doctor (only the visit's doctor invites)."""
    await visible_visit(session, actor, visit_id)
    handle = temporal.get_workflow_handle(visit_workflow_id(visit_id))
    request = InviteConsultant(doctor_id=actor.ref or "", consultant_id=body.consultant_id, reason=body.reason)
    return await workflow_call(handle.execute_update(VisitWorkflow.invite_consultant, request))


@router.get(
    "/visits/{visit_id}/consultants",
    response_model=list[ConsultantOut],
    responses=problem_responses(401, 404),
    summary="会诊医生与会诊意见",
)
async def consultants(
    visit_id: str, request: Request, actor: ActorDep, session: SessionDep, ctx: ContextDep
) -> list[ConsultantOut]:
    """Who was invited, why, and the opinions signed so far with each signature checked now. Audited."""
    return await consultants_of(ctx, session, actor, visit_id, request)


@router.post(
    "/visits/{visit_id}/opinions",
    response_model=VisitState,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="出具会诊意见",
)
async def give_opinion(
    visit_id: str, body: OpinionIn, actor: DoctorDep, session: SessionDep, temporal: TemporalDep
) -> VisitState:
    """An invited doctor signs their opinion (SM2 with a trusted timestamp, on the evidence ledger); it cannot be
    changed afterwards (409 `OPINION_SIGNED`). 403 for a doctor not invited."""
    await visible_visit(session, actor, visit_id)
    handle = temporal.get_workflow_handle(visit_workflow_id(visit_id))
    request = GiveOpinion(doctor_id=actor.ref or "", opinion=body.opinion)
    return await workflow_call(handle.execute_update(VisitWorkflow.give_opinion, request))

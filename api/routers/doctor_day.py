"""The doctor's day (8.2.1–8.2.3): worklists, the preview of the patient before accepting, and the guardian of a
child under six (8.1.2.1 c). Accepting, aborting and finishing are in api/routers/visits.py."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from api.auth import ActorDep, DoctorDep
from api.deps import ContextDep, SessionDep
from api.errors import problem_responses
from api.schemas.doctor_day import GuardianIn, GuardianOut, VisitPreview, Worklist
from api.services.guardians import read_guardian, record_guardian
from api.services.visit_preview import visit_preview
from api.services.worklist import worklist

router = APIRouter(tags=["doctor-day"])


@router.get("/me/worklist", response_model=Worklist, responses=problem_responses(401, 403), summary="医生出诊列表")
async def my_worklist(
    actor: DoctorDep,
    session: SessionDep,
    ctx: ContextDep,
    finished_limit: int = Query(default=50, ge=1, le=200, description="已完成列表的条数"),
) -> Worklist:
    """待接诊, 接诊中 and 已完成: the doctor's own visits and those they were invited into (`role`), patients' names
    masked. The preview shows more."""
    return await worklist(session, ctx.cipher, actor.ref or "", finished_limit)


@router.get(
    "/visits/{visit_id}/preview",
    response_model=VisitPreview,
    responses=problem_responses(401, 403, 404),
    summary="接诊前预览患者资料",
)
async def preview(visit_id: str, request: Request, actor: DoctorDep, session: SessionDep, ctx: ContextDep):
    """For the visit's doctor and invited doctors: the patient, the revisit decision and its evidence, earlier signed
    records and uploaded records, with warnings. Audited, naming each record and upload shown."""
    return await visit_preview(ctx, session, actor, visit_id, request)


@router.put(
    "/visits/{visit_id}/guardian",
    response_model=GuardianOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="登记患儿监护人及陪诊医师",
)
async def put_guardian(
    visit_id: str, body: GuardianIn, request: Request, actor: DoctorDep, session: SessionDep, ctx: ContextDep
) -> GuardianOut:
    """A child under six gets no prescription (409 `GUARDIAN_REQUIRED`) until a doctor of the visit has checked and
    recorded the accompanying guardian's identity and the physician who came along."""
    return await record_guardian(ctx, session, actor, visit_id, body, request)


@router.get(
    "/visits/{visit_id}/guardian",
    response_model=GuardianOut,
    responses=problem_responses(401, 404),
    summary="患儿监护人及陪诊医师",
)
async def get_guardian(
    visit_id: str, request: Request, actor: ActorDep, session: SessionDep, ctx: ContextDep
) -> GuardianOut:
    """The ID-card number is masked. Audited."""
    return await read_guardian(ctx, session, actor, visit_id, request)

"""Complaints about an order (8.6.7 e): a patient complains about their own visit or prescription; staff holding the
feedback permission are reminded until they answer (the `Complaint` flow), and the patient is told the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request

from api.auth import Actor, ActorDep, PatientDep
from api.deps import ContextDep, SessionDep
from api.errors import problem_responses
from api.idempotency import idempotent
from api.permissions import require_permission
from api.schemas.common import Limit, Offset, Page
from api.schemas.complaints import ComplaintIn, ComplaintOut, ComplaintResponseIn
from api.services import complaints
from api.services.audit import audit, audit_read
from models.complaint import ComplaintResponse, ComplaintStatus
from models.permissions import Permission
from models.tables import Complaint

router = APIRouter(tags=["complaints"])

HandlerDep = Annotated[Actor, Depends(require_permission(Permission.FEEDBACK_MANAGE))]
ComplaintId = Annotated[str, Path(max_length=40)]


def _detail(row: Complaint) -> dict[str, str]:
    """What the audit row says about the complaint: ids and codes, not the patient's words."""
    return {"subject_type": row.subject_type, "subject_id": row.subject_id, "category": row.category}


@router.post(
    "/complaints",
    status_code=201,
    response_model=ComplaintOut,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
    summary="投诉订单",
)
async def create_complaint(
    body: ComplaintIn,
    request: Request,
    actor: PatientDep,
    session: SessionDep,
    ctx: ContextDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """About one of the caller's own visits or prescriptions (404 for any other). The staff who handle feedback are
    told at once and reminded until they answer; the answer reaches the patient as a notice."""
    patient_id = actor.ref
    assert patient_id is not None  # PatientDep: a patient with a profile

    async def compute() -> tuple[int, dict]:
        row = await complaints.create(session, ctx.temporal, ctx.settings, patient_id, body)
        audit(session, actor, "complaint.created", "complaint", row.id, detail=_detail(row), request=request)
        await session.commit()
        return 201, complaints.view(row).model_dump(mode="json")

    return await idempotent(request, actor, idempotency_key, compute)


@router.get(
    "/me/complaints",
    response_model=Page[ComplaintOut],
    responses=problem_responses(401, 403, 422),
    summary="我的投诉",
)
async def my_complaints(
    actor: PatientDep, session: SessionDep, limit: Limit = 20, offset: Offset = 0
) -> Page[ComplaintOut]:
    """Newest first, with the hospital's answer once given."""
    items, total = await complaints.of_patient(session, actor.ref or "", limit, offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/complaints/{complaint_id}",
    response_model=ComplaintOut,
    responses=problem_responses(401, 404),
    summary="投诉详情",
)
async def get_complaint(
    complaint_id: ComplaintId, request: Request, actor: ActorDep, session: SessionDep, ctx: ContextDep
) -> ComplaintOut:
    """For the patient who made it and the staff who handle feedback; 404 for anyone else."""
    row, own = await complaints.visible(session, ctx.pg, actor, complaint_id)
    if not own:
        await audit_read(session, actor, "complaint", row.id, row.patient_id, request)
    return complaints.view(row)


@router.get(
    "/admin/complaints",
    response_model=Page[ComplaintOut],
    responses=problem_responses(401, 403, 422),
    summary="投诉处理列表",
)
async def list_complaints(
    actor: HandlerDep,
    session: SessionDep,
    status: Annotated[ComplaintStatus, Query(description="open 待处理 / answered 已答复")] = ComplaintStatus.OPEN,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[ComplaintOut]:
    """Open complaints the longest waiting first; answered ones the latest answer first."""
    items, total = await complaints.queue(session, status, limit, offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/admin/complaints/{complaint_id}/response",
    response_model=ComplaintOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="答复投诉",
)
async def respond_to_complaint(
    complaint_id: ComplaintId,
    body: ComplaintResponseIn,
    request: Request,
    actor: HandlerDep,
    session: SessionDep,
    ctx: ContextDep,
) -> ComplaintOut:
    """The answer is recorded and sent to the patient at once. 409 `COMPLAINT_ANSWERED` when answered already."""
    answer = ComplaintResponse(responder_id=actor.user_id, response=body.response)
    row = await complaints.respond(session, ctx.temporal, complaint_id, answer)
    audit(session, actor, "complaint.answered", "complaint", row.id, detail=_detail(row), request=request)
    await session.commit()
    return complaints.view(row)

"""The hospital's registration with the provincial supervision platform (8.5.4 医疗机构身份认证), for admins holding
the institution permission. Submitting runs the `InstitutionRegistration` flow: the platform's approval, then the
institution's verification through the platform's look-up; the admins are told the outcome. An approved institution
is looked up again every day and whenever an admin asks (`InstitutionReverification`); one the platform no longer
confirms is suspended, and the hospital takes no new bookings while it is."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request

from api.auth import Actor
from api.deps import ContextDep, SessionDep
from api.errors import problem_responses
from api.idempotency import idempotent
from api.permissions import require_permission
from api.schemas.institutions import (
    InstitutionIn,
    InstitutionOut,
    RegistrationOut,
    ReverificationOut,
    ReverificationRecordOut,
)
from api.services import institutions
from api.services.audit import audit
from models.institution import InstitutionInput
from models.permissions import Permission

router = APIRouter(prefix="/admin/institutions", tags=["institutions"])

ManagerDep = Annotated[Actor, Depends(require_permission(Permission.INSTITUTION_MANAGE))]
InstitutionId = Annotated[str, Path(max_length=40)]
# How often the flow asks the platform whether it has decided.
POLL_EVERY_S = InstitutionInput.model_fields["poll_every_s"].default


@router.post(
    "",
    status_code=201,
    response_model=InstitutionOut,
    responses=problem_responses(401, 403, 409, 422),
    summary="登记机构信息",
)
async def create_institution(
    body: InstitutionIn, request: Request, actor: ManagerDep, session: SessionDep
) -> InstitutionOut:
    """A draft; `POST …/registration` submits it. 409 `INSTITUTION_EXISTS` for a number already recorded."""
    row = await institutions.create(session, body, actor.user_id)
    audit(session, actor, "institution.created", "institution", row.id, detail=body.model_dump(), request=request)
    await session.commit()
    return institutions.view(row)


@router.get("", response_model=list[InstitutionOut], responses=problem_responses(401, 403), summary="机构登记列表")
async def list_institutions(actor: ManagerDep, session: SessionDep) -> list[InstitutionOut]:
    return [institutions.view(row) for row in await institutions.listing(session)]


@router.get(
    "/{institution_id}",
    response_model=InstitutionOut,
    responses=problem_responses(401, 403, 404),
    summary="机构登记详情",
)
async def get_institution(institution_id: InstitutionId, actor: ManagerDep, session: SessionDep) -> InstitutionOut:
    """Where the registration stands: the platform's reference, its decision and the verification after approval."""
    return institutions.view(await institutions.get(session, institution_id))


@router.put(
    "/{institution_id}",
    response_model=InstitutionOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="修改机构信息",
)
async def edit_institution(
    institution_id: InstitutionId, body: InstitutionIn, request: Request, actor: ManagerDep, session: SessionDep
) -> InstitutionOut:
    """Only a draft or a rejected registration (409 `INSTITUTION_NOT_EDITABLE`); then submit again."""
    row, changes = await institutions.edit(session, institution_id, body)
    if changes:
        audit(
            session, actor, "institution.updated", "institution", row.id, detail={"changes": changes}, request=request
        )
    await session.commit()
    return institutions.view(row)


@router.post(
    "/{institution_id}/registration",
    status_code=202,
    response_model=RegistrationOut,
    responses=problem_responses(401, 403, 404, 409),
    summary="向监管平台提交机构登记",
)
async def submit_registration(
    institution_id: InstitutionId, request: Request, actor: ManagerDep, session: SessionDep, ctx: ContextDep
) -> RegistrationOut:
    """Starts the registration flow (again after a rejection); `GET /admin/institutions/{id}` follows it."""
    submitted = await institutions.submit(session, ctx.temporal, ctx.settings.task_queue, institution_id, POLL_EVERY_S)
    audit(
        session,
        actor,
        "institution.submitted",
        "institution",
        institution_id,
        detail={"attempt": submitted.attempt},
        request=request,
    )
    await session.commit()
    return submitted


@router.post(
    "/{institution_id}/reverification",
    status_code=202,
    response_model=ReverificationOut,
    responses=problem_responses(401, 403, 404, 409),
    summary="向监管平台重新核验机构",
)
async def reverify_institution(
    institution_id: InstitutionId,
    request: Request,
    actor: ManagerDep,
    session: SessionDep,
    ctx: ContextDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """Looks the approved (or suspended) institution up on the platform again (8.5.4.4); 409
    `INSTITUTION_NOT_APPROVED` otherwise. Not confirmed: the institution is suspended and the hospital takes no new
    bookings; a suspended one the platform confirms again is reinstated. `GET …/reverifications` shows the outcome."""

    async def compute() -> tuple[int, dict]:
        started = await institutions.reverify(
            session, ctx.temporal, ctx.settings.task_queue, institution_id, actor.user_id
        )
        audit(
            session,
            actor,
            "institution.reverification_requested",
            "institution",
            institution_id,
            detail={"status": str(started.status), "workflow_id": started.workflow_id},
            request=request,
        )
        await session.commit()
        return 202, started.model_dump(mode="json")

    return await idempotent(request, actor, idempotency_key, compute)


@router.get(
    "/{institution_id}/reverifications",
    response_model=list[ReverificationRecordOut],
    responses=problem_responses(401, 403, 404),
    summary="机构重新核验记录",
)
async def list_reverifications(
    institution_id: InstitutionId, actor: ManagerDep, session: SessionDep
) -> list[ReverificationRecordOut]:
    """Every re-verification of the institution, newest first: who asked, when, the platform's answer and what it
    changed."""
    return await institutions.reverifications(session, institution_id)

"""Doctors and pharmacists registering themselves (8.5.2.1, 8.5.3.1) and looking after their own application.

Registering creates the account and a draft application. The applicant then signs in (`POST /auth/token`; until the
application is approved that session reaches only these endpoints), uploads an ID photo and their licences, and
submits. The review's result arrives by SMS and in `GET /staff-applications/me`; after approval, signing in again
gives a doctor's or pharmacist's session.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from api.auth import Actor, limited_actor
from api.deps import ContextDep, SessionDep
from api.errors import Problem, problem_responses
from api.gateway.limits import limit_address
from api.hospital_time import hospital_today
from api.schemas.staff import ApplicationOut, StaffApplicationIn, SubmitOut
from api.services import staff_applications as applications
from api.services.audit import audit
from api.services.sealed_files import read_upload
from models.onboarding import DocumentKind

router = APIRouter(prefix="/staff-applications", tags=["staff"])

# Document uploads take more than the API's usual body limit (api.main mounts this with the others).
LARGE_BODIES = ((re.compile(r"/staff-applications/me/documents\Z"), applications.MAX_DOCUMENT_UPLOAD),)

# Any session of the account, the applicant's restricted one included (not one that must change its initial password
# first); the application itself is looked up from it.
ApplicantDep = Annotated[Actor, Depends(limited_actor)]

_CONFLICTS = {"USERNAME_TAKEN", "APPLICATION_EXISTS"}
# The rate counter's kind for registrations (counted per client address).
REGISTRATION_LIMIT = "staff_register"


@router.post(
    "",
    status_code=201,
    response_model=ApplicationOut,
    responses=problem_responses(409, 422, 429),
    summary="医生、药师注册",
)
async def register(body: StaffApplicationIn, request: Request, session: SessionDep, ctx: ContextDep) -> ApplicationOut:
    """Create the account (role doctor or pharmacist) and its draft application; then sign in, upload documents and
    submit. 409 `USERNAME_TAKEN` or `APPLICATION_EXISTS` (this ID number has applied already: sign in instead); 422
    `INVALID_APPLICATION` listing every field at fault (ID number check character, password rules, a doctor's
    department, a licence date in the future). 429 `RATE_LIMITED` (with `Retry-After`) past
    `staff_registration_per_minute` attempts from one client address in a minute, whatever their outcome."""
    # Counted before any check: refused attempts probe which usernames and ID numbers exist, and every one that
    # passes costs a scrypt hash.
    await limit_address(ctx.pg, request, REGISTRATION_LIMIT, ctx.settings.staff_registration_per_minute)
    applicant = applications.Applicant(**body.model_dump())
    faults = applications.applicant_faults(applicant, hospital_today())
    if not faults:
        ref = await applications.load_reference(session, ctx.cipher, [applicant])
        conflicts = applications.reference_faults(applicant, ref, ctx.cipher)
        if conflict := next((fault for fault in conflicts if fault.code in _CONFLICTS), None):
            raise Problem(409, conflict.code, "无法注册", conflict.message)
        faults = conflicts
    if faults:
        raise Problem(
            422,
            "INVALID_APPLICATION",
            "注册信息有误",
            "；".join(fault.message for fault in faults) + "。",
            errors=[{"field": f"body.{fault.field}", "message": fault.message, "type": fault.code} for fault in faults],
        )
    [row] = await applications.add_applications(session, ctx.cipher, [applicant], source="self", created_by=None)
    audit(session, None, "staff.registered", "staff_application", row.id, detail={"role": row.role}, request=request)
    await session.commit()
    return applications.applicant_view(row, [])


@router.get("/me", response_model=ApplicationOut, responses=problem_responses(401, 404), summary="我的注册申请")
async def my_application(actor: ApplicantDep, session: SessionDep) -> ApplicationOut:
    """Status, the documents uploaded and still missing, the checks and, after a rejection, why."""
    row = await applications.application_of(session, actor)
    return applications.applicant_view(row, await applications.documents_of(session, row.id))


@router.post(
    "/me/documents",
    status_code=201,
    response_model=ApplicationOut,
    responses=problem_responses(401, 404, 409, 413, 415, 422),
    summary="上传证件照、执业证书等材料",
)
async def upload_document(
    kind: Annotated[DocumentKind, Form(description="材料类型")],
    file: Annotated[UploadFile, File(description="JPEG、PNG 或 PDF，不超过 5 MB")],
    request: Request,
    actor: ApplicantDep,
    session: SessionDep,
    ctx: ContextDep,
) -> ApplicationOut:
    """Stored encrypted; its SM3 digest goes to the evidence ledger when the application is submitted. Only while
    the application is a draft or was rejected (409 `APPLICATION_NOT_OPEN`). 413 `MEDIA_TOO_LARGE`, 415
    `MEDIA_TYPE_NOT_ALLOWED`, 422 `MEDIA_EMPTY` / `MEDIA_CONTENT_MISMATCH`."""
    row = await applications.application_of(session, actor)
    content_type, data = await read_upload(file, applications.DOCUMENT_RULE)
    document = await applications.add_document(session, ctx.settings.pii_key, row, actor, kind, content_type, data)
    audit(
        session,
        actor,
        "staff.document_uploaded",
        "staff_application",
        row.id,
        detail={"document_id": document.id, "kind": str(kind), "sm3": document.sm3},
        request=request,
    )
    await session.commit()
    return applications.applicant_view(row, await applications.documents_of(session, row.id))


@router.post(
    "/me/submit",
    status_code=202,
    response_model=SubmitOut,
    responses=problem_responses(401, 404, 409, 422),
    summary="提交资质审核",
)
async def submit(request: Request, actor: ApplicantDep, session: SessionDep, ctx: ContextDep) -> SubmitOut:
    """Start the checks and the review (again, after a rejection). 422 `DOCUMENTS_MISSING` lists what to upload
    first; 409 `APPLICATION_NOT_OPEN` while it is being reviewed or once approved."""
    row = await applications.application_of(session, actor)
    submitted = await applications.submit(session, ctx.temporal, ctx.settings, row)
    audit(
        session, actor, "staff.submitted", "staff_application", row.id, detail={"attempt": row.attempt}, request=request
    )
    await session.commit()
    return submitted

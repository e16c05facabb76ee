"""Records patients upload as evidence of an offline diagnosis (复诊资料, 8.1.2.2 a), and the doctor's review of
them. An approved upload counts as evidence in the revisit check of its disease."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Header, Path, Query, Request, Response, UploadFile

from api.auth import ActorDep, DoctorDep, PatientDep
from api.consents import require_consents
from api.deps import ContextDep, SessionDep
from api.errors import Problem, problem_responses
from api.idempotency import idempotent
from api.schemas.revisit_uploads import ReviewIn, ReviewOut, UploadCreated, UploadOut
from api.services.audit import audit_read
from api.services.revisit_checks import tell_revisit_check
from api.services.revisit_uploads import (
    RULE,
    may_review,
    open_file,
    readable_upload,
    store_upload,
    upload_out,
    uploads_for,
)
from api.services.sealed_files import read_upload
from core.crypto.sm import sm3_hex
from models.revisit import UploadReview, UploadSubmitted
from workflows.revisit import RevisitCheckWorkflow

router = APIRouter(prefix="/revisit-uploads", tags=["revisit"])

# Uploads are bigger than the API's general body limit (see api.middleware.BodySizeLimitMiddleware): the largest file
# plus room for the multipart framing and the small form fields.
LARGE_BODIES = ((re.compile(r"/revisit-uploads\Z"), RULE.limit + 64 * 1024),)

UploadId = Annotated[str, Path(max_length=40)]


@router.post(
    "",
    status_code=201,
    response_model=UploadCreated,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422),
    summary="上传复诊资料",
)
async def upload(
    request: Request,
    actor: PatientDep,
    ctx: ContextDep,
    disease_code: Annotated[str, Form(min_length=1, max_length=32, description="资料所证明的病种")],
    visited_on: Annotated[date, Form(description="资料记载的线下就诊日期")],
    file: Annotated[
        UploadFile, File(description="门诊病历、检查报告等的照片或 PDF（jpeg、png、webp、pdf，不超过 10 MB）")
    ],
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """An image or PDF of an earlier offline visit of this hospital, as evidence for the revisit check of
    `disease_code`. Sealed at rest with its SM3 digest, which also goes on the evidence ledger. Without other
    evidence the revisit check waits for a doctor of the disease's department to review it (`pending_review`).

    413 `MEDIA_TOO_LARGE`, 415 `MEDIA_TYPE_NOT_ALLOWED`, 422 `MEDIA_EMPTY` / `MEDIA_CONTENT_MISMATCH` /
    `VISIT_DATE_IN_FUTURE` / `VISIT_DATE_OUT_OF_WINDOW`; 404 for an unknown disease.
    """
    content_type, data = await read_upload(file, RULE)
    patient_id = actor.ref or ""
    async with ctx.sessions() as session:
        await require_consents(session, patient_id)

    async def compute() -> tuple[int, dict]:
        row = await store_upload(ctx, actor, disease_code, visited_on, content_type, data, request)
        decision = await tell_revisit_check(
            ctx.temporal,
            ctx.settings,
            patient_id,
            disease_code,
            RevisitCheckWorkflow.add_upload,
            UploadSubmitted(upload_id=row.id),
        )
        return 201, UploadCreated(upload=upload_out(row), decision=decision).model_dump(mode="json")

    # A resent multipart body has another boundary: the request is what it says, not its bytes.
    digest = sm3_hex(f"{disease_code}\n{visited_on}\n{content_type}\n{sm3_hex(data)}".encode())
    return await idempotent(request, actor, idempotency_key, compute, content_digest=digest)


@router.get("", response_model=list[UploadOut], responses=problem_responses(401, 403, 422), summary="复诊资料列表")
async def list_uploads(
    actor: ActorDep,
    session: SessionDep,
    status: Literal["pending", "approved", "rejected"] | None = Query(
        default=None, description="按审核状态筛选；医生的待审列表用 pending"
    ),
    disease_code: str | None = Query(default=None, max_length=32),
    limit: int = Query(default=50, ge=1, le=200),
    offset: int = Query(default=0, ge=0, le=1_000_000),
) -> list[UploadOut]:
    """Patients see their own uploads; doctors those of their department's diseases, which they review."""
    rows = await uploads_for(session, actor, status, disease_code, limit, offset)
    return [upload_out(row) for row in rows]


@router.get(
    "/{upload_id}/file",
    response_class=Response,
    responses={
        200: {"description": "文件内容（已解密）", "content": {"image/*": {}, "application/pdf": {}}},
        **problem_responses(401, 404),
    },
    summary="下载复诊资料",
)
async def download(upload_id: UploadId, request: Request, actor: ActorDep, session: SessionDep, ctx: ContextDep):
    """The file as uploaded; `X-Content-SM3` carries the digest recorded at upload (and on the evidence ledger)."""
    row = await readable_upload(session, actor, upload_id)
    await audit_read(session, actor, "revisit_upload", upload_id, row.patient_id, request)
    return Response(
        open_file(ctx, row),
        media_type=row.content_type,
        headers={
            "X-Content-SM3": row.sm3,
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": "inline",
        },
    )


@router.post(
    "/{upload_id}/review",
    response_model=ReviewOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="审核复诊资料",
)
async def review(
    upload_id: UploadId, body: ReviewIn, actor: DoctorDep, session: SessionDep, ctx: ContextDep
) -> ReviewOut:
    """A doctor of the disease's department approves the upload (it then counts as evidence of the offline
    diagnosis, and the patient may book) or rejects it with a reason. 409 `UPLOAD_NOT_PENDING` once reviewed,
    `REVIEW_REASON_REQUIRED` for a rejection without a reason; 403 for a doctor of another department."""
    row = await readable_upload(session, actor, upload_id)
    if not await may_review(session, actor.ref, row.disease_code):
        raise Problem(403, "FORBIDDEN", "无权审核该资料", "复诊资料由该病种所属科室的医生审核。")
    decision = await tell_revisit_check(
        ctx.temporal,
        ctx.settings,
        row.patient_id,
        row.disease_code,
        RevisitCheckWorkflow.review_upload,
        UploadReview(upload_id=upload_id, reviewer_id=actor.ref or "", approve=body.approve, reason=body.reason),
    )
    await session.refresh(row)
    return ReviewOut(upload=upload_out(row), decision=decision)

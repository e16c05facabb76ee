"""Admins review doctors' and pharmacists' applications (8.5.2.2, 8.5.3.2) and create accounts in a batch (8.5.2.1,
8.5.3.1). Each decision goes through the application's `Onboarding` flow, which tells the applicant."""

from __future__ import annotations

import secrets
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, File, Path, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from api.auth import Actor
from api.deps import ContextDep, SessionDep
from api.errors import problem_responses
from api.hospital_time import hospital_today
from api.permissions import require_permission
from api.schemas.common import Limit, Offset, Page
from api.schemas.staff import AdminApplicationOut, ApplicationSummary, ReviewIn, StaffImportReport
from api.services import staff_applications as applications
from api.services.audit import audit
from api.services.sealed_files import file_response, unseal
from api.services.sheet_import import import_responses, rejected_import
from api.services.staff_import import import_applicants, read_applicants
from models.onboarding import ApplicationStatus, OnboardingState, StaffRole
from models.permissions import Permission

router = APIRouter(prefix="/admin/staff-applications", tags=["staff"])

ReviewerDep = Annotated[Actor, Depends(require_permission(Permission.STAFF_REVIEW))]
StaffId = Annotated[str, Path(max_length=40)]


@router.get(
    "", response_model=Page[ApplicationSummary], responses=problem_responses(401, 403, 422), summary="注册申请列表"
)
async def list_applications(
    actor: ReviewerDep,
    session: SessionDep,
    status: Annotated[ApplicationStatus | None, Query(description="按状态筛选")] = None,
    role: Annotated[StaffRole | None, Query(description="医生或药师")] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[ApplicationSummary]:
    """Latest submissions first; `status=awaiting_review` is the review queue."""
    items, total = await applications.list_applications(session, status, role, limit, offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/{staff_id}",
    response_model=AdminApplicationOut,
    responses=problem_responses(401, 403, 404),
    summary="注册申请详情",
)
async def get_application(
    staff_id: StaffId, actor: ReviewerDep, session: SessionDep, ctx: ContextDep
) -> AdminApplicationOut:
    """Identity (masked), licence, documents with their SM3 digests and ledger entries, and the checks' outcomes."""
    return await applications.admin_view(session, ctx.cipher, staff_id)


@router.get(
    "/{staff_id}/documents/{document_id}",
    response_class=Response,
    responses={
        200: {"description": "材料文件（已解密）", "content": {"image/*": {}, "application/pdf": {}}},
        **problem_responses(401, 403, 404),
    },
    summary="查看申请材料",
)
async def get_document(
    staff_id: StaffId,
    document_id: Annotated[str, Path(max_length=40)],
    request: Request,
    actor: ReviewerDep,
    session: SessionDep,
    ctx: ContextDep,
) -> Response:
    """The file as uploaded; `X-Content-SM3` carries its digest. Every view is audited."""
    found = await applications.document(session, staff_id, document_id)
    audit(
        session,
        actor,
        "staff_document.read",
        "staff_application",
        staff_id,
        detail={"document_id": document_id},
        request=request,
    )
    await session.commit()
    data = unseal(ctx.settings.pii_key, f"{applications.DOCUMENT_COLUMN}:{found.id}", found.data_enc)
    return file_response(data, found.content_type, found.sm3)


@router.post(
    "/{staff_id}/review",
    response_model=OnboardingState,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="审核注册申请",
)
async def review(
    staff_id: StaffId, body: ReviewIn, request: Request, actor: ReviewerDep, session: SessionDep, ctx: ContextDep
) -> OnboardingState:
    """Approve (the account becomes a working doctor's or pharmacist's account) or reject with a reason (the
    applicant is told it and may submit again). 409 `APPLICATION_NOT_AWAITING_REVIEW`, `REASON_REQUIRED`."""
    state = await applications.review(ctx.temporal, actor, staff_id, body.approve, body.reason)
    action = "staff.approved" if body.approve else "staff.rejected"
    audit(session, actor, action, "staff_application", staff_id, reason=body.reason, request=request)
    await session.commit()
    return state


@router.post(
    "/import",
    status_code=201,
    response_model=StaffImportReport,
    responses=import_responses(StaffImportReport, "人员"),
    summary="批量创建医生、药师账号",
)
async def import_staff(
    file: Annotated[UploadFile, File(description="CSV（UTF-8 或 GBK）或 XLSX 文件")],
    request: Request,
    actor: ReviewerDep,
    session: SessionDep,
    ctx: ContextDep,
    dry_run: Annotated[bool, Query(description="true：只检查，不创建")] = False,
) -> JSONResponse:
    """Accounts with draft applications from a CSV or XLSX file (multipart field `file`), at most 200 rows.

    Columns (English or zh-CN header): role 角色 (医生/药师), username 用户名, name 姓名, id_card_no 身份证号, phone 手机号,
    licence_no 执业证书编码, licence_date 执业证书日期, and optionally department_id 科室编号 (doctors: required),
    title 职称, institution 执业机构, affiliation 药师来源 (本院/第三方). All or nothing. `dry_run=true` answers 200 with
    every bad row (line, column, code, reason); an import answers 201 with each account's initial password, shown
    only this once, or 422 `IMPORT_REJECTED` with the same `errors`. Each person then signs in, uploads their
    documents and submits, as after registering themselves.
    """
    rows = await to_thread.run_sync(read_applicants, await file.read())
    accounts, errors = await import_applicants(
        session, ctx.cipher, rows, hospital_today(), actor.user_id, dry_run=dry_run
    )
    report = StaffImportReport(dry_run=dry_run, ok=not errors, rows=len(rows), accounts=accounts, errors=errors)
    if dry_run:
        return JSONResponse(report.model_dump(mode="json"))
    if errors:
        raise rejected_import(len(rows), errors, "人员导入失败", "创建任何账号")
    audit(
        session,
        actor,
        "staff.imported",
        "staff_import",
        f"import-{secrets.token_hex(6)}",
        detail={"staff_ids": [account.staff_id for account in accounts]},
        request=request,
    )
    await session.commit()
    return JSONResponse(report.model_dump(mode="json"), status_code=201, headers={"Cache-Control": "no-store"})

"""The TCM medical record (中医病历, 8.2.4–8.2.5): the doctor writes it during the consult and signs it, which locks
it; later corrections are signed addenda. Patients and doctors list and read their records; every read is audited."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import col

from api.auth import ActorDep, DoctorDep
from api.deps import ContextDep, SessionDep, TemporalDep
from api.errors import problem_responses
from api.idempotency import idempotent
from api.queries.listing import own_rows
from api.services.access import visible_visit
from api.services.record_fhir import record_bundle
from api.services.record_pdf import render_record_pdf
from api.services.records import RecordView, add_addendum, record_view
from api.services.temporal_calls import workflow_call
from models.record import RecordAddendum, SignRecord
from models.tables import MedicalRecord
from models.visit import TcmRecord, VisitState, WriteRecord
from workflows.visit import VisitWorkflow, visit_workflow_id

router = APIRouter(tags=["records"])

FHIR_JSON = "application/fhir+json"


class RecordSummary(BaseModel):
    visit_id: str
    patient_id: str
    doctor_id: str
    tcm_disease: str
    tcm_syndrome: str
    written_at: datetime
    signed_at: datetime | None


class AddendumIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000, examples=["补充：患者诉近两日夜寐欠安。"])


@router.get("/records", response_model=list[RecordSummary], responses=problem_responses(401), summary="病历列表")
async def list_records(
    actor: ActorDep,
    session: SessionDep,
    limit: int = Query(default=50, ge=1, le=200),
    offset: int = Query(default=0, ge=0, le=1_000_000),
) -> list[RecordSummary]:
    """Patients see their own records, doctors the ones they wrote, admins all; newest first."""
    query = own_rows(
        select(MedicalRecord).order_by(col(MedicalRecord.written_at).desc()).limit(limit).offset(offset),
        actor,
        col(MedicalRecord.patient_id),
        col(MedicalRecord.doctor_id),
    )
    if query is None:
        return []
    return [
        RecordSummary(
            visit_id=row.visit_id,
            patient_id=row.patient_id,
            doctor_id=row.doctor_id,
            tcm_disease=row.content.get("tcm_disease", ""),
            tcm_syndrome=row.content.get("tcm_syndrome", ""),
            written_at=row.written_at,
            signed_at=row.signed_at,
        )
        for row in (await session.execute(query)).scalars()
    ]


@router.get(
    "/visits/{visit_id}/record", response_model=RecordView, responses=problem_responses(401, 404), summary="病历详情"
)
async def get_record(visit_id: str, request: Request, actor: ActorDep, session: SessionDep, ctx: ContextDep):
    """The record with its prescriptions and addenda, and each signature checked now."""
    _, view = await record_view(ctx, session, actor, visit_id, request)
    return view


@router.get(
    "/visits/{visit_id}/record.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, **problem_responses(401, 404)},
    summary="下载病历（PDF）",
)
async def record_pdf(
    visit_id: str, request: Request, actor: ActorDep, session: SessionDep, ctx: ContextDep
) -> Response:
    document, _ = await record_view(ctx, session, actor, visit_id, request)
    return Response(
        render_record_pdf(document),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="record-{visit_id}.pdf"'},
    )


@router.get(
    "/visits/{visit_id}/record/fhir",
    responses={200: {"content": {FHIR_JSON: {}}}, **problem_responses(401, 404)},
    summary="下载病历（FHIR R4B 文档）",
)
async def record_fhir(
    visit_id: str, request: Request, actor: ActorDep, session: SessionDep, ctx: ContextDep
) -> Response:
    """A FHIR R4B `document` Bundle: Composition, Patient, Practitioner, Encounter, Conditions and MedicationRequests,
    with the doctor's signature."""
    document, _ = await record_view(ctx, session, actor, visit_id, request)
    return JSONResponse(record_bundle(document), media_type=FHIR_JSON)


@router.put(
    "/visits/{visit_id}/record",
    response_model=VisitState,
    responses=problem_responses(401, 404, 409, 422),
    summary="书写病历",
)
async def write_record(
    visit_id: str, body: TcmRecord, actor: DoctorDep, session: SessionDep, temporal: TemporalDep
) -> VisitState:
    """Write or rewrite the record during the consult; 409 `RECORD_SIGNED` once it is signed."""
    await visible_visit(session, actor, visit_id)
    handle = temporal.get_workflow_handle(visit_workflow_id(visit_id))
    return await workflow_call(
        handle.execute_update(VisitWorkflow.write_record, WriteRecord(doctor_id=actor.ref or "", record=body))
    )


@router.post(
    "/visits/{visit_id}/record/sign",
    response_model=VisitState,
    responses=problem_responses(401, 404, 409),
    summary="签署病历",
)
async def sign_record(visit_id: str, actor: DoctorDep, session: SessionDep, temporal: TemporalDep) -> VisitState:
    """The doctor's SM2 signature with a trusted timestamp; the record is locked from then on and the consult may be
    finished. 409 `RECORD_REQUIRED` before it is written, `RECORD_SIGNED` when signed already."""
    await visible_visit(session, actor, visit_id)
    handle = temporal.get_workflow_handle(visit_workflow_id(visit_id))
    return await workflow_call(handle.execute_update(VisitWorkflow.sign_record, SignRecord(doctor_id=actor.ref or "")))


@router.post(
    "/visits/{visit_id}/record/addenda",
    status_code=201,
    response_model=RecordAddendum,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
    summary="添加补充记录",
)
async def post_addendum(
    visit_id: str,
    body: AddendumIn,
    request: Request,
    actor: DoctorDep,
    session: SessionDep,
    ctx: ContextDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """A signed addendum to the signed record (409 `RECORD_NOT_SIGNED` before it is signed; 503
    `SIGNING_UNAVAILABLE` when the signer or the TSA cannot be reached, with nothing stored)."""

    async def compute() -> tuple[int, dict]:
        addendum = await add_addendum(ctx, session, actor, visit_id, body.text, request)
        return 201, addendum.model_dump(mode="json")

    return await idempotent(request, actor, idempotency_key, compute)

"""After paying and receiving the medicine (8.3.3.3, 8.3.9.4): the medication guidance, and the adverse reaction
channel (the patient reports, a pharmacist answers; both through the report's workflow, audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlmodel import col

from api.auth import ActorDep, PatientDep, PharmacistDep
from api.deps import CipherDep, SessionDep, SettingsDep, TemporalDep
from api.errors import Problem, problem_responses
from api.idempotency import idempotent
from api.services import aftercare
from api.services.access import visible_prescription
from api.services.audit import audit, audit_read
from api.services.temporal_calls import workflow_call
from models.aftercare import (
    AdverseReactionResponse,
    AdverseReactionState,
    MedicationGuidance,
    ReactionAction,
    ReactionSeverity,
    ReactionStage,
)
from models.common import Role
from models.tables import AdverseReactionReport
from workflows.adverse_reaction import AdverseReactionWorkflow, adverse_reaction_workflow_id

router = APIRouter(tags=["aftercare"])

ReportId = Annotated[str, Path(max_length=80)]


class ReactionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: ReactionSeverity = Field(description="mild 轻度 / moderate 中度 / severe 重度")
    symptoms: str = Field(min_length=1, max_length=1000, examples=["服药第二天起胃部不适、轻微恶心"])
    began_at: datetime | None = Field(default=None, description="症状开始时间")


class ReactionReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: ReactionAction = Field(description="continue 继续服用 / stop 停药 / see_doctor 尽快就医")
    advice: str = Field(min_length=1, max_length=1000, examples=["请暂停服药，多饮温水；症状未缓解请到医院就诊。"])


class ReportCreated(BaseModel):
    report_id: str
    prescription_id: str
    stage: ReactionStage


class ReportOut(BaseModel):
    report_id: str
    prescription_id: str
    patient_id: str
    severity: ReactionSeverity
    symptoms: str
    began_at: datetime | None
    stage: ReactionStage
    overdue: bool
    responded_by: str | None
    response_action: ReactionAction | None
    response_advice: str | None
    responded_at: datetime | None
    reported_at: datetime

    @classmethod
    def of(cls, row: AdverseReactionReport) -> ReportOut:
        return cls(
            report_id=row.id,
            prescription_id=row.prescription_id,
            patient_id=row.patient_id,
            severity=ReactionSeverity(row.severity),
            symptoms=row.symptoms,
            began_at=row.began_at,
            stage=ReactionStage(row.stage),
            overdue=row.overdue,
            responded_by=row.responded_by,
            response_action=ReactionAction(row.response_action) if row.response_action else None,
            response_advice=row.response_advice,
            responded_at=row.responded_at,
            reported_at=row.reported_at,
        )


class ReportListed(BaseModel):
    """The queue shows no symptoms: a pharmacist opens the prescription's reports (an audited read) to see them."""

    report_id: str
    prescription_id: str
    severity: ReactionSeverity
    stage: ReactionStage
    overdue: bool
    reported_at: datetime


@router.get(
    "/prescriptions/{prescription_id}/guidance",
    response_model=MedicationGuidance,
    responses=problem_responses(401, 404, 409),
    summary="用药指导",
)
async def guidance(
    prescription_id: str, request: Request, actor: ActorDep, session: SessionDep, cipher: CipherDep
) -> MedicationGuidance:
    """How to decoct and take the medicine and what to avoid meanwhile, from the rule engine's knowledge file.
    409 `RX_NOT_PAID` before the prescription is paid."""
    row = await visible_prescription(session, actor, prescription_id)
    answer = await aftercare.guidance(session, cipher, row)
    await audit_read(session, actor, "prescription", prescription_id, row.patient_id, request)
    return answer


@router.post(
    "/prescriptions/{prescription_id}/adverse-reactions",
    status_code=201,
    response_model=ReportCreated,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="反馈用药不良反应",
)
async def report_reaction(
    prescription_id: str,
    body: ReactionIn,
    request: Request,
    actor: PatientDep,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """Once the medicine was delivered (409 `RX_NOT_DELIVERED` before). The dispensing pharmacist, the pharmacists
    on duty and the prescribing doctor are told at once, the admins too when it is severe."""
    row = await visible_prescription(session, actor, prescription_id)

    async def compute() -> tuple[int, dict]:
        report_id = await aftercare.report_reaction(
            session, temporal, settings, row, body.severity, body.symptoms, body.began_at
        )
        audit(session, actor, "adverse_reaction.reported", "adverse_reaction", report_id, request=request,
              detail={"prescription_id": prescription_id, "severity": body.severity.value})  # fmt: skip
        await session.commit()
        created = ReportCreated(report_id=report_id, prescription_id=prescription_id, stage=ReactionStage.OPEN)
        return 201, created.model_dump(mode="json")

    return await idempotent(request, actor, idempotency_key, compute)


@router.get(
    "/prescriptions/{prescription_id}/adverse-reactions",
    response_model=list[ReportOut],
    responses=problem_responses(401, 404),
    summary="处方的不良反应报告",
)
async def prescription_reactions(
    prescription_id: str, request: Request, actor: ActorDep, session: SessionDep
) -> list[ReportOut]:
    row = await visible_prescription(session, actor, prescription_id)
    await audit_read(session, actor, "adverse_reaction", prescription_id, row.patient_id, request)
    rows = await session.execute(
        select(AdverseReactionReport)
        .where(col(AdverseReactionReport.prescription_id) == prescription_id)
        .order_by(col(AdverseReactionReport.reported_at))
    )
    return [ReportOut.of(report) for report in rows.scalars()]


@router.get(
    "/adverse-reactions",
    response_model=list[ReportListed],
    responses=problem_responses(401, 403),
    summary="不良反应报告队列",
)
async def reaction_queue(
    actor: ActorDep,
    session: SessionDep,
    stage: ReactionStage = Query(default=ReactionStage.OPEN),
    limit: int = Query(default=50, ge=1, le=200),
) -> list[ReportListed]:
    """For pharmacists and admins; severe first, then the longest waiting."""
    if actor.role not in (Role.PHARMACIST, Role.ADMIN):
        raise Problem(403, "FORBIDDEN", "无权访问", "仅药师和管理员可以查看不良反应报告")
    severe_first = col(AdverseReactionReport.severity) != ReactionSeverity.SEVERE.value
    rows = await session.execute(
        select(AdverseReactionReport)
        .where(col(AdverseReactionReport.stage) == stage.value)
        .order_by(severe_first, col(AdverseReactionReport.reported_at))
        .limit(limit)
    )
    return [
        ReportListed(
            report_id=r.id,
            prescription_id=r.prescription_id,
            severity=ReactionSeverity(r.severity),
            stage=ReactionStage(r.stage),
            overdue=r.overdue,
            reported_at=r.reported_at,
        )
        for r in rows.scalars()
    ]


@router.post(
    "/adverse-reactions/{report_id}/response",
    response_model=AdverseReactionState,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="药师答复不良反应",
)
async def respond(
    report_id: ReportId,
    body: ReactionReplyIn,
    request: Request,
    actor: PharmacistDep,
    session: SessionDep,
    temporal: TemporalDep,
) -> AdverseReactionState:
    """The advice reaches the patient at once. 409 `ADVERSE_REACTION_ANSWERED` when it was answered already."""
    report = await session.get(AdverseReactionReport, report_id)
    if report is None:
        raise Problem(404, "NOT_FOUND", "未找到", "不良反应报告不存在")
    state = await workflow_call(
        temporal.get_workflow_handle(adverse_reaction_workflow_id(report_id)).execute_update(
            AdverseReactionWorkflow.respond,
            AdverseReactionResponse(pharmacist_id=actor.ref or "", action=body.action, advice=body.advice),
        )
    )
    audit(session, actor, "adverse_reaction.responded", "adverse_reaction", report_id, request=request,
          detail={"prescription_id": report.prescription_id, "action": body.action.value})  # fmt: skip
    await session.commit()
    return state

"""Prescriptions: the public rule check, the doctor's signature, the pharmacist's review, the patient's confirmation,
then dispensing and sign-off. Each step is an update to the prescription's (or its fulfilment's) workflow."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlmodel import col

from activities.rules.engine import RuleEngine, default_engine
from api.auth import ActorDep, PatientDep, PharmacistDep
from api.deps import CipherDep, ContextDep, SessionDep, SettingsDep, TemporalDep
from api.errors import Problem, problem_responses
from api.permissions import PrescriberDep, RxReviewerDep
from api.schemas.money import InsuranceIn
from api.services import duty, pharmacies
from api.services.access import visible_prescription
from api.services.audit import audit, audit_read
from api.services.prescription_signatures import SignatureCheck, check_signatures
from api.services.refunds import present_insurance
from api.services.temporal_calls import workflow_call
from models.common import Role
from models.fulfilment import DispenseCheck, FulfilmentState, SignOff, SignOffResult, UnlockSignOff
from models.prescription import (
    CheckRequest,
    CheckResult,
    ClaimReview,
    ConfirmPrescription,
    PickupChoice,
    PrescriptionDraft,
    PrescriptionState,
    ReviewPrescription,
    RevisePrescription,
    RxStage,
    SignPrescription,
)
from models.tables import Fulfilment, Prescription
from workflows.bill import prescription_bill_id
from workflows.fulfilment import FulfilmentWorkflow, fulfilment_workflow_id
from workflows.prescription import PrescriptionWorkflow, prescription_workflow_id

router = APIRouter(prefix="/prescriptions", tags=["prescriptions"])

_RULES = "\n".join(f"- `{rule['code']}`: {rule['description']}" for rule in RuleEngine.rule_codes())


class PrescriptionSummary(BaseModel):
    prescription_id: str
    visit_id: str
    patient_id: str
    doctor_id: str
    stage: RxStage
    revision: int
    verdict: str | None
    total_fen: int | None
    pickup: str | None
    created_at: datetime
    updated_at: datetime
    renewed_from: str | None = Field(default=None, description="续方：所续的原处方")
    submitted_at: datetime | None = Field(default=None, description="医生签名提交审方的时间")
    waiting_s: int | None = Field(default=None, description="待审处方已等待审核的秒数")
    overdue: bool = Field(default=False, description="待审处方已超过审方时限")
    review_reason: str | None = Field(default=None, description="药师最近一次退回的理由")
    forced: bool = Field(default=False, description="药师退回后医生未修改而坚持签名（强制生效，特别记录）")
    forced_reason: str | None = Field(default=None, description="医生坚持原处方的理由")
    claimed_by: str | None = Field(default=None, description="正在审核该处方的药师（认领有效期内）")
    claim_expires_at: datetime | None = None


class PrescriptionDetail(BaseModel):
    summary: PrescriptionSummary
    draft: PrescriptionDraft
    state: PrescriptionState
    fulfilment: FulfilmentState | None = None


class SignIn(BaseModel):
    reason: str | None = Field(default=None, max_length=500, description="存在需双签的项目时必填：再次签名的理由")


class ReviewIn(BaseModel):
    approve: bool
    reason: str = Field(default="", max_length=500)


class DispenseIn(BaseModel):
    approve: bool
    note: str = Field(default="", max_length=500)


class SignOffIn(BaseModel):
    pickup_code: str = Field(pattern=r"^\d{6}$", examples=["123456"])


class PickupCodeOut(BaseModel):
    pickup_code: str


@router.post(
    "/check",
    response_model=CheckResult,
    responses=problem_responses(401, 403, 422),
    summary="处方规则前置审核",
    description="Runs the offline rule engine; no side effects. Finding codes:\n\n" + _RULES,
)
async def check(body: CheckRequest, actor: ActorDep) -> CheckResult:
    if actor.role not in (Role.DOCTOR, Role.PHARMACIST):
        raise Problem(403, "FORBIDDEN", "无权访问", "仅医生和药师可以使用处方审核")
    return default_engine().check(body)


def _summary(row: Prescription, now: datetime, review_sla_s: int) -> PrescriptionSummary:
    waiting_s = None
    if row.stage == RxStage.AWAITING_REVIEW.value:
        waiting_s = max(0, int((now - (row.submitted_at or row.updated_at)).total_seconds()))
    claimed = row.claim_expires_at is not None and row.claim_expires_at > now
    return PrescriptionSummary(
        prescription_id=row.id,
        visit_id=row.visit_id,
        patient_id=row.patient_id,
        doctor_id=row.doctor_id,
        stage=RxStage(row.stage),
        revision=row.revision,
        verdict=row.verdict,
        total_fen=row.total_fen,
        pickup=row.pickup,
        created_at=row.created_at,
        updated_at=row.updated_at,
        renewed_from=row.renewed_from,
        submitted_at=row.submitted_at,
        waiting_s=waiting_s,
        overdue=waiting_s is not None and waiting_s > review_sla_s,
        review_reason=row.review_reason,
        forced=row.forced,
        forced_reason=row.forced_reason,
        claimed_by=row.claimed_by if claimed else None,
        claim_expires_at=row.claim_expires_at if claimed else None,
    )


@router.get("", response_model=list[PrescriptionSummary], responses=problem_responses(401), summary="处方列表")
async def list_prescriptions(
    actor: ActorDep,
    session: SessionDep,
    settings: SettingsDep,
    stage: RxStage | None = Query(default=None, description="药师的待审队列用 awaiting_review"),
    limit: int = Query(default=50, ge=1, le=200),
    offset: int = Query(default=0, ge=0, le=1_000_000),
) -> list[PrescriptionSummary]:
    """Patients and doctors see their own; pharmacists and admins see all (the review queue). Newest first; the
    review queue (`stage=awaiting_review`) longest waiting first, each with its waiting time and `overdue` once past
    the review SLA."""
    if stage is RxStage.AWAITING_REVIEW:
        waiting_since = func.coalesce(col(Prescription.submitted_at), col(Prescription.updated_at))
        query = select(Prescription).order_by(waiting_since, col(Prescription.id))
    else:
        query = select(Prescription).order_by(col(Prescription.created_at).desc())
    query = query.limit(limit).offset(offset)
    if actor.role is Role.PATIENT:
        query = query.where(col(Prescription.patient_id) == actor.ref)
    elif actor.role is Role.DOCTOR:
        query = query.where(col(Prescription.doctor_id) == actor.ref)
    elif actor.role not in (Role.PHARMACIST, Role.ADMIN):
        return []
    if stage is not None:
        query = query.where(col(Prescription.stage) == stage.value)
    now = datetime.now(UTC)
    return [_summary(row, now, settings.review_sla_s) for row in (await session.execute(query)).scalars()]


@router.get(
    "/{prescription_id}", response_model=PrescriptionDetail, responses=problem_responses(401, 404), summary="处方详情"
)
async def get_prescription(
    prescription_id: str,
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> PrescriptionDetail:
    row = await visible_prescription(session, actor, prescription_id)
    await audit_read(session, actor, "prescription", prescription_id, row.patient_id, request)
    state = await workflow_call(
        temporal.get_workflow_handle(prescription_workflow_id(prescription_id)).query(PrescriptionWorkflow.state)
    )
    fulfilment = None
    if state.stage in (RxStage.FULFILLING, RxStage.COMPLETED):
        try:
            fulfilment = await workflow_call(_fulfil(temporal, prescription_id).query(FulfilmentWorkflow.state))
        except Problem as missing:
            if missing.status != 404:
                raise  # the fulfilment flow starts just after the payment: until then there is none to show
    return PrescriptionDetail(
        summary=_summary(row, datetime.now(UTC), settings.review_sla_s),
        draft=PrescriptionDraft.model_validate(row.draft),
        state=state,
        fulfilment=fulfilment,
    )


def _rx(temporal: TemporalDep, prescription_id: str):
    return temporal.get_workflow_handle(prescription_workflow_id(prescription_id))


@router.post(
    "/{prescription_id}/sign",
    response_model=PrescriptionState,
    responses=problem_responses(401, 404, 409),
    summary="医生签名",
)
async def sign(
    prescription_id: str, body: SignIn, actor: PrescriberDep, session: SessionDep, temporal: TemporalDep
) -> PrescriptionState:
    """The rule check (with the pharmacy's stock) runs again first. 409 `RX_BLOCKED` when it blocks, naming what
    (e.g. each herb short and by how much); `RX_REASON_REQUIRED` when a finding needs a second signature.

    A prescription the pharmacist returned may be signed again unchanged, with `reason` as the doctor's justification
    (else 409 `RX_JUSTIFICATION_REQUIRED`): it goes back to review marked `forced` and is specially recorded."""
    await visible_prescription(session, actor, prescription_id)
    return await workflow_call(
        _rx(temporal, prescription_id).execute_update(
            PrescriptionWorkflow.sign, SignPrescription(doctor_id=actor.ref or "", reason=body.reason)
        )
    )


@router.post(
    "/{prescription_id}/revise",
    response_model=PrescriptionState,
    responses=problem_responses(401, 404, 409, 422),
    summary="修改处方",
)
async def revise(
    prescription_id: str, body: PrescriptionDraft, actor: PrescriberDep, session: SessionDep, temporal: TemporalDep
) -> PrescriptionState:
    await visible_prescription(session, actor, prescription_id)
    return await workflow_call(
        _rx(temporal, prescription_id).execute_update(
            PrescriptionWorkflow.revise, RevisePrescription(doctor_id=actor.ref or "", draft=body)
        )
    )


@router.post(
    "/{prescription_id}/review/claim",
    response_model=PrescriptionState,
    responses=problem_responses(401, 403, 404, 409),
    summary="认领待审处方",
)
async def claim_review(
    prescription_id: str, actor: RxReviewerDep, session: SessionDep, temporal: TemporalDep, settings: SettingsDep
) -> PrescriptionState:
    """Takes the prescription off the shared queue for `review_claim_ttl_s`, so no other pharmacist reviews it
    meanwhile; claiming it again extends the claim. 409 `NOT_ON_DUTY` before signing in for duty, `RX_CLAIMED` while
    another pharmacist's claim holds."""
    await visible_prescription(session, actor, prescription_id)
    if await duty.open_period(session, actor.ref or "") is None:
        raise Problem(409, "NOT_ON_DUTY", "尚未签到上岗", "请先签到上岗，再认领待审处方")
    return await workflow_call(
        _rx(temporal, prescription_id).execute_update(
            PrescriptionWorkflow.claim_review,
            ClaimReview(pharmacist_id=actor.ref or "", ttl_s=settings.review_claim_ttl_s),
        )
    )


@router.post(
    "/{prescription_id}/review",
    response_model=PrescriptionState,
    responses=problem_responses(401, 403, 404, 409),
    summary="药师审方",
)
async def review(
    prescription_id: str, body: ReviewIn, actor: RxReviewerDep, session: SessionDep, temporal: TemporalDep
) -> PrescriptionState:
    """Approve (the pharmacist's signature makes the prescription valid) or reject with a reason back to the doctor.
    409 `RX_CLAIMED` while another pharmacist's claim holds."""
    await visible_prescription(session, actor, prescription_id)
    return await workflow_call(
        _rx(temporal, prescription_id).execute_update(
            PrescriptionWorkflow.review,
            ReviewPrescription(pharmacist_id=actor.ref or "", approve=body.approve, reason=body.reason),
        )
    )


class ConfirmIn(PickupChoice):
    insurance: InsuranceIn | None = Field(default=None, description="使用医保支付药费时的医保电子凭证")


@router.post(
    "/{prescription_id}/confirm",
    response_model=PrescriptionState,
    responses=problem_responses(401, 404, 409, 422),
    summary="患者确认处方",
)
async def confirm(
    prescription_id: str, body: ConfirmIn, actor: PatientDep, session: SessionDep, ctx: ContextDep
) -> PrescriptionState:
    """Confirm the items, the pickup method (`hospital` 院内取药, `delivery` 配送到家, `pharmacy` 药店取药 at the
    partner `pharmacy_id` of GET /pharmacies) and (for delivery) the address, and whether the pharmacy decocts
    (`decoction_service`); answers with the bill to pay. 409 `PHARMACY_UNAVAILABLE` when the chosen partner does not
    offer that. The pharmacy is decided by rule once paid, and shown in the prescription's `fulfilment`."""
    await visible_prescription(session, actor, prescription_id)
    await pharmacies.check_choice(session, body)
    patient_id = actor.ref or ""
    await present_insurance(ctx.sessions, ctx.cipher, patient_id, prescription_bill_id(prescription_id), body.insurance)
    choice = body.model_dump(exclude={"insurance"})
    return await workflow_call(
        _rx(ctx.temporal, prescription_id).execute_update(
            PrescriptionWorkflow.confirm, ConfirmPrescription(patient_id=patient_id, **choice)
        )
    )


def _fulfil(temporal: TemporalDep, prescription_id: str):
    return temporal.get_workflow_handle(fulfilment_workflow_id(prescription_id))


@router.post(
    "/{prescription_id}/dispense",
    response_model=FulfilmentState,
    responses=problem_responses(401, 403, 404, 409),
    summary="调剂复核",
)
async def dispense(
    prescription_id: str, body: DispenseIn, actor: PharmacistDep, session: SessionDep, temporal: TemporalDep
) -> FulfilmentState:
    """The routed pharmacy's pharmacist re-checks the paid prescription (8.3.7.2) and signs the decision: approve to
    dispense, or refuse with a `note` (the order is cancelled and the patient refunded). 409 `NOT_THIS_PHARMACY` for
    a pharmacist of another pharmacy."""
    await visible_prescription(session, actor, prescription_id)
    pharmacist_id = actor.ref or ""
    check = DispenseCheck(
        pharmacist_id=pharmacist_id,
        approve=body.approve,
        note=body.note,
        pharmacy_id=await pharmacies.pharmacy_of(session, pharmacist_id),
    )
    return await workflow_call(
        _fulfil(temporal, prescription_id).execute_update(FulfilmentWorkflow.dispense, check),
        missing="处方尚未进入调剂",
    )


@router.get(
    "/{prescription_id}/signatures",
    response_model=list[SignatureCheck],
    responses=problem_responses(401, 404),
    summary="处方签名验证",
)
async def prescription_signatures(
    prescription_id: str, request: Request, actor: ActorDep, session: SessionDep, ctx: ContextDep
) -> list[SignatureCheck]:
    """Each signature of the prescription as it stands (the doctor's, a second one with its reason, the pharmacist's,
    then the dispensing pharmacist's re-check), checked now: the SM2 signature over the stored prescription and the
    TSA's timestamp over the signature."""
    row = await visible_prescription(session, actor, prescription_id)
    await audit_read(session, actor, "prescription", prescription_id, row.patient_id, request)
    fulfilment = await session.get(Fulfilment, prescription_id)
    return check_signatures(row, ctx.adapters.tsa.trust_anchors, fulfilment)


@router.get(
    "/{prescription_id}/pickup-code",
    response_model=PickupCodeOut,
    responses=problem_responses(401, 403, 404),
    summary="我的提货码",
)
async def pickup_code(
    prescription_id: str, request: Request, actor: PatientDep, session: SessionDep, cipher: CipherDep
) -> PickupCodeOut:
    row = await visible_prescription(session, actor, prescription_id)
    await audit_read(session, actor, "pickup_code", prescription_id, row.patient_id, request)
    fulfilment = await session.get(Fulfilment, prescription_id)
    if fulfilment is None or fulfilment.pickup_code_enc is None:
        raise Problem(404, "NOT_FOUND", "提货码尚未生成", "药品调剂完成后生成提货码")
    return PickupCodeOut(pickup_code=cipher.decrypt("pickup_code", fulfilment.pickup_code_enc) or "")


@router.post(
    "/{prescription_id}/sign-off",
    response_model=SignOffResult,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="凭提货码签收",
)
async def sign_off(
    prescription_id: str, body: SignOffIn, actor: ActorDep, session: SessionDep, temporal: TemporalDep
) -> SignOffResult:
    """The receiving patient (or the pharmacy counter for pickups) enters the code; wrong codes are counted."""
    if actor.role not in (Role.PATIENT, Role.PHARMACIST):
        raise Problem(403, "FORBIDDEN", "无权访问", "仅患者本人或药房人员可以签收")
    await visible_prescription(session, actor, prescription_id)
    return await workflow_call(
        _fulfil(temporal, prescription_id).execute_update(
            FulfilmentWorkflow.sign_off, SignOff(actor_id=actor.ref or "", pickup_code=body.pickup_code)
        ),
        missing="处方尚未进入配送",
    )


class UnlockIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500, examples=["已当面核验收件人身份证件"])


@router.post(
    "/{prescription_id}/sign-off/unlock",
    response_model=FulfilmentState,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="解除签收锁定",
)
async def unlock_sign_off(
    prescription_id: str,
    body: UnlockIn,
    request: Request,
    actor: PharmacistDep,
    session: SessionDep,
    temporal: TemporalDep,
) -> FulfilmentState:
    """After too many wrong pickup codes sign-off locks; a pharmacist who checked the recipient in person re-opens it."""
    await visible_prescription(session, actor, prescription_id)
    state = await workflow_call(
        _fulfil(temporal, prescription_id).execute_update(
            FulfilmentWorkflow.unlock_sign_off, UnlockSignOff(pharmacist_id=actor.ref or "", reason=body.reason)
        ),
        missing="处方尚未进入配送",
    )
    audit(
        session,
        actor,
        "fulfilment.sign_off_unlocked",
        "prescription",
        prescription_id,
        reason=body.reason,
        request=request,
    )
    await session.commit()
    return state

"""续方 (renewal, 8.2.6.1): the visit's doctor lists the patient's earlier prescriptions for the same disease that
pass today's rule check, and renews one in the consult. A renewal is a new prescription with the same items and
its own id; like any other it is checked (with stock), signed, reviewed, confirmed and paid."""

from __future__ import annotations

import secrets
from datetime import datetime

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, Field

from api.auth import DoctorDep
from api.deps import CipherDep, SessionDep, TemporalDep
from api.errors import Problem, problem_responses
from api.idempotency import idempotent
from api.permissions import PrescriberDep
from api.services.access import visible_visit
from api.services.audit import audit
from api.services.renewals import open_visit_diseases, renewable, renewal_source
from api.services.temporal_calls import workflow_call
from models.prescription import CheckResult, PrescriptionDraft
from models.visit import Prescribe
from workflows.visit import VisitWorkflow, visit_workflow_id

router = APIRouter(tags=["renewals"])


class RenewableOut(BaseModel):
    prescription_id: str
    visit_id: str
    doctor_id: str
    prescribed_at: datetime
    draft: PrescriptionDraft
    check: CheckResult = Field(description="按当前审方规则对原处方的审核结果（仅含 pass / warn）")


class RenewIn(BaseModel):
    prescription_id: str = Field(min_length=1, max_length=80, description="要续的原处方")


class RenewOut(BaseModel):
    prescription_id: str
    renewed_from: str


@router.get(
    "/patients/{patient_id}/renewable-prescriptions",
    response_model=list[RenewableOut],
    responses=problem_responses(401, 403, 404, 409),
    summary="可续方的既往处方",
)
async def renewable_prescriptions(
    patient_id: str,
    actor: DoctorDep,
    session: SessionDep,
    cipher: CipherDep,
    disease: str | None = Query(default=None, max_length=32, description="病种编码；默认为当前复诊的病种"),
) -> list[RenewableOut]:
    """For the doctor of the patient's open visit (waiting or in consult), and only for that visit's disease.
    Newest first."""
    diseases = await open_visit_diseases(session, actor.ref or "", patient_id)
    disease_code = disease or (diseases[0] if diseases else None)
    if disease_code is None or disease_code not in diseases:
        raise Problem(404, "NOT_FOUND", "未找到", "没有该患者此病种的在诊挂号")
    return [
        RenewableOut(
            prescription_id=rx.id,
            visit_id=rx.visit_id,
            doctor_id=rx.doctor_id,
            prescribed_at=rx.created_at,
            draft=PrescriptionDraft.model_validate(rx.draft),
            check=check,
        )
        for rx, check in await renewable(session, cipher, patient_id, disease_code)
    ]


@router.post(
    "/visits/{visit_id}/prescriptions/renew",
    status_code=201,
    response_model=RenewOut,
    responses=problem_responses(401, 404, 409, 422),
    summary="续方",
)
async def renew(
    visit_id: str,
    body: RenewIn,
    request: Request,
    actor: PrescriberDep,
    session: SessionDep,
    cipher: CipherDep,
    temporal: TemporalDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
):
    """A new prescription in this consult with the items of an earlier one of the patient for the same disease.
    409 `RX_NOT_RENEWABLE` when that one is not completed, is for another disease or no longer passes the rule check;
    `VISIT_NOT_IN_CONSULT` outside the consult."""
    visit = await visible_visit(session, actor, visit_id)
    handle = temporal.get_workflow_handle(visit_workflow_id(visit_id))

    async def compute() -> tuple[int, dict]:
        source, draft = await renewal_source(session, cipher, visit, body.prescription_id)
        prescription_id = f"{visit_id}-rx{secrets.token_hex(3)}"
        created = await workflow_call(
            handle.execute_update(
                VisitWorkflow.prescribe,
                Prescribe(
                    doctor_id=actor.ref or "", prescription_id=prescription_id, draft=draft, renewed_from=source.id
                ),
            )
        )
        audit(
            session,
            actor,
            "prescription.renewed",
            "prescription",
            created,
            detail={"renewed_from": source.id},
            request=request,
        )
        await session.commit()
        return 201, {"prescription_id": created, "renewed_from": source.id}

    return await idempotent(request, actor, idempotency_key, compute)

"""After the medicine is paid for and delivered (8.3.3.3, 8.3.9.4): the medication guidance of a prescription, and
starting an adverse reaction report on a delivered one."""

from __future__ import annotations

import secrets
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from activities.rules.guidance import medication_guidance
from api.errors import Problem
from core.crypto.sm import FieldCipher
from core.settings import Settings
from models.aftercare import AdverseReactionInput, MedicationGuidance, ReactionSeverity
from models.fulfilment import FulfilmentStage
from models.prescription import PatientFacts, PrescriptionDraft, RxStage
from models.tables import Fulfilment, Patient, Prescription
from workflows.adverse_reaction import AdverseReactionWorkflow, adverse_reaction_workflow_id

PAID = (RxStage.FULFILLING.value, RxStage.COMPLETED.value)
DELIVERED = (FulfilmentStage.DELIVERED.value, FulfilmentStage.SIGNED.value)


async def guidance(session: AsyncSession, cipher: FieldCipher, rx: Prescription) -> MedicationGuidance:
    """Shown once the prescription is paid: until then it may still change or never be taken."""
    if rx.stage not in PAID:
        raise Problem(409, "RX_NOT_PAID", "处方尚未支付", "处方支付后可查看用药指导")
    draft = PrescriptionDraft.model_validate(rx.draft)
    patient = await session.get(Patient, rx.patient_id)
    id_card_no = cipher.decrypt("id_card", patient.id_card_enc) if patient and patient.id_card_enc else None
    if id_card_no:
        facts = draft.check_request(id_card_no, date.today()).patient
    else:  # not identified yet: an adult of either sex, so no caution for women is left out
        facts = PatientFacts(age_years=18, sex="unknown", pregnant=draft.pregnant, allergies=draft.allergies)
    return medication_guidance(rx.id, draft, facts, rx.decoction_service)


async def report_reaction(
    session: AsyncSession,
    temporal: Client,
    settings: Settings,
    rx: Prescription,
    severity: ReactionSeverity,
    symptoms: str,
    began_at: datetime | None,
) -> str:
    """Start the report's flow; only for a prescription whose medicine reached the patient."""
    fulfilment = await session.get(Fulfilment, rx.id)
    if fulfilment is None or fulfilment.stage not in DELIVERED:
        raise Problem(409, "RX_NOT_DELIVERED", "药品尚未送达", "药品送达后可反馈用药不良反应")
    report_id = f"{rx.id}-adr{secrets.token_hex(3)}"
    await temporal.start_workflow(
        AdverseReactionWorkflow.run,
        AdverseReactionInput(
            report_id=report_id,
            prescription_id=rx.id,
            patient_id=rx.patient_id,
            doctor_id=rx.doctor_id,
            dispensing_pharmacist_id=(fulfilment.recheck or {}).get("pharmacist_id"),
            severity=severity,
            symptoms=symptoms,
            began_at=began_at,
            response_sla_s=settings.adverse_reaction_response_sla_s,
        ),
        id=adverse_reaction_workflow_id(report_id),
        task_queue=settings.task_queue,
    )
    return report_id

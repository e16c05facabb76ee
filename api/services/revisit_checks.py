"""Reaching a patient's RevisitCheck flow for one disease: Update-with-Start, so a message finds the open check or
starts a new one (which looks for evidence again)."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from api.services.temporal_calls import workflow_call
from core.settings import Settings
from models.revisit import RevisitCheckInput, RevisitDecision
from models.tables import RevisitEligibility
from workflows.revisit import RevisitCheckWorkflow, revisit_workflow_id


async def tell_revisit_check(
    temporal: Client, settings: Settings, patient_id: str, disease_code: str, update: Any, *args: Any
) -> RevisitDecision:
    """Run `update` (a RevisitCheckWorkflow update) on the check, starting one if none is open; its answer."""
    check = RevisitCheckInput(
        patient_id=patient_id,
        disease_code=disease_code,
        window_days=settings.revisit_window_days,
        valid_days=settings.revisit_eligibility_days,
    )
    start = WithStartWorkflowOperation(
        RevisitCheckWorkflow.run,
        check,
        id=revisit_workflow_id(patient_id, disease_code),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=settings.task_queue,
    )
    decision: RevisitDecision = await workflow_call(
        temporal.execute_update_with_start_workflow(update, *args, start_workflow_operation=start)
    )
    return decision


def stored_decision(row: RevisitEligibility) -> RevisitDecision:
    """A decision as its flow last recorded it."""
    return RevisitDecision(
        patient_id=row.patient_id,
        disease_code=row.disease_code,
        disease_name=row.disease_name,
        status=row.status,
        evidence=row.evidence,
        decided_at=row.decided_at,
        valid_until=row.valid_until,
        reason=row.reason,
    )

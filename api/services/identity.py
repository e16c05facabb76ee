"""Starting real-name verification when a patient submits their identity."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from api.context import IdentityHook
from models.identity import IdentityCheckInput
from workflows.identity import IdentityVerificationWorkflow, identity_workflow_id


def identity_verifier(temporal: Client, task_queue: str) -> IdentityHook:
    async def start(patient_id: str, submission: str, liveness_token: str | None = None) -> None:
        await temporal.start_workflow(
            IdentityVerificationWorkflow.run,
            IdentityCheckInput(patient_id=patient_id, submission=submission, liveness_token=liveness_token),
            id=identity_workflow_id(patient_id, submission),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=task_queue,
        )

    return start

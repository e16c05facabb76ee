"""RevisitCheck with records the patient uploaded (8.1.2.2 a): without an offline diagnosis in HIS/EMR the decision
waits for a doctor's review; an approval makes the patient eligible, rejections of everything do not (fake
activities)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from temporalio.client import WithStartWorkflowOperation, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy

from models.revisit import (
    EvidenceSource,
    OfflineDiagnosis,
    RevisitCheckInput,
    RevisitDecision,
    RevisitStatus,
    UploadReview,
    UploadSubmitted,
)
from tests.workflows.conftest import Harness
from tests.workflows.test_consultation import noticed
from workflows.revisit import RevisitCheckWorkflow, revisit_workflow_id

# An offline diagnosis the HIS found.
HIS_EVIDENCE = OfflineDiagnosis(
    encounter_id="E1",
    disease_code="D1",
    disease_name="胃痞病",
    diagnosed_at=datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
    department="脾胃病科",
    doctor_name="李医生",
    source=EvidenceSource.HIS,
)


def check() -> RevisitCheckInput:
    return RevisitCheckInput(
        patient_id=f"pat-{uuid.uuid4().hex[:8]}", disease_code="D1", window_days=180, valid_days=90
    )


async def start(
    h: Harness, request: RevisitCheckInput, update=None, arg=None
) -> tuple[RevisitDecision, WorkflowHandle]:
    operation = WithStartWorkflowOperation(
        RevisitCheckWorkflow.run,
        request,
        id=revisit_workflow_id(request.patient_id, request.disease_code),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=h.queue,
    )
    if update is None:
        decision = await h.client.execute_update_with_start_workflow(
            RevisitCheckWorkflow.decision, start_workflow_operation=operation
        )
    else:
        decision = await h.client.execute_update_with_start_workflow(update, arg, start_workflow_operation=operation)
    return decision, await operation.workflow_handle()


def review(upload_id: str, approve: bool, reason: str = "") -> UploadReview:
    return UploadReview(upload_id=upload_id, reviewer_id="doc-1", approve=approve, reason=reason)


async def refused(handle: WorkflowHandle, request: UploadReview) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(RevisitCheckWorkflow.review_upload, request)
    return failure.value.cause.type  # type: ignore[union-attr]


async def test_an_approved_upload_makes_the_patient_eligible(harness: Harness) -> None:
    harness.world.pending = ["upl-a", "upl-b"]
    decision, handle = await start(harness, check())
    assert decision.status is RevisitStatus.PENDING_REVIEW and decision.evidence == []

    assert await refused(handle, review("upl-a", approve=False)) == "REVIEW_REASON_REQUIRED"
    assert await refused(handle, review("upl-x", approve=True)) == "UPLOAD_NOT_PENDING"
    rejected = await handle.execute_update(
        RevisitCheckWorkflow.review_upload, review("upl-a", approve=False, reason="图片模糊，无法辨认诊断")
    )
    assert rejected.status is RevisitStatus.PENDING_REVIEW  # another upload still waits
    approved = await handle.execute_update(RevisitCheckWorkflow.review_upload, review("upl-b", approve=True))
    assert approved.status is RevisitStatus.ELIGIBLE and approved.valid_until is not None
    assert [(e.encounter_id, e.source) for e in approved.evidence] == [("upload:upl-b", EvidenceSource.UPLOAD)]
    assert approved.disease_name == "胃痞病" and approved.reason is None
    # Reviewed once, each; a second decision on the same upload is refused.
    assert await refused(handle, review("upl-b", approve=False, reason="x")) == "UPLOAD_NOT_PENDING"
    assert [(r.upload_id, r.approve) for r in harness.world.reviews] == [("upl-a", False), ("upl-b", True)]
    assert [n.params.get("reason") for n in await noticed(harness, "revisit_upload_rejected")] == [
        "图片模糊，无法辨认诊断"
    ]
    await noticed(harness, "revisit_upload_approved")
    await handle.terminate("eligible until expiry: test done")


async def test_rejecting_every_upload_ends_not_eligible(harness: Harness) -> None:
    harness.world.pending = ["upl-a"]
    _, handle = await start(harness, check())
    await handle.execute_update(
        RevisitCheckWorkflow.review_upload, review("upl-a", approve=False, reason="非本院就诊记录")
    )
    final = await handle.result()
    assert final.status is RevisitStatus.NOT_ELIGIBLE
    assert final.reason == "上传的就诊资料未通过审核：非本院就诊记录"


async def test_an_upload_after_a_refusal_opens_a_new_check_that_waits_for_review(harness: Harness) -> None:
    request = check()
    refused_first, first = await start(harness, request)
    assert refused_first.status is RevisitStatus.NOT_ELIGIBLE
    await first.result()

    harness.world.pending = ["upl-new"]  # stored by the upload before it asks the flow
    waiting, handle = await start(
        harness, request, RevisitCheckWorkflow.add_upload, UploadSubmitted(upload_id="upl-new")
    )
    assert waiting.status is RevisitStatus.PENDING_REVIEW
    assert harness.world.calls["find_revisit_evidence"] == 2  # the new check looked at HIS/EMR again
    decided = await handle.execute_update(RevisitCheckWorkflow.review_upload, review("upl-new", approve=True))
    assert decided.status is RevisitStatus.ELIGIBLE
    await handle.terminate("test done")


async def test_a_review_while_eligible_adds_evidence_and_keeps_the_expiry(harness: Harness) -> None:
    harness.world.evidence = [HIS_EVIDENCE]
    request = check()
    eligible, handle = await start(harness, request)
    assert eligible.status is RevisitStatus.ELIGIBLE
    added = await handle.execute_update(RevisitCheckWorkflow.add_upload, UploadSubmitted(upload_id="upl-late"))
    assert added.status is RevisitStatus.ELIGIBLE
    reviewed = await handle.execute_update(RevisitCheckWorkflow.review_upload, review("upl-late", approve=True))
    assert reviewed.valid_until == eligible.valid_until
    assert {e.encounter_id for e in reviewed.evidence} == {"E1", "upload:upl-late"}
    await handle.terminate("test done")

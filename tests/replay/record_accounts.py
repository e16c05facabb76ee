"""Record the histories of the account flows under `tests/histories/`, as `tests/replay/record.py` does for the others
(same rules: record only new scenarios; never re-record to make a replay pass): staff onboarding (with and without
the review deadline), institution registration and re-verification, real-name verification with a liveness check,
and the security housekeeping.

Run with `.venv/bin/python -m tests.replay.record_accounts [scenario …]`.
"""

from __future__ import annotations

import asyncio

from temporalio.client import WorkflowHandle

from models.housekeeping import HousekeepingInput
from models.identity import IdentityCheckInput, LivenessResult
from models.institution import (
    InstitutionInput,
    InstitutionStatus,
    RegistrationState,
    RegistrationStatus,
    ReverificationInput,
)
from models.onboarding import ApplicationStatus, OnboardingInput, OnboardingState, PractitionerRecord, StaffReview
from tests.replay.record import Recorder, main
from tests.workflows.account_fakes import (
    HousekeepingWorld,
    IdentityWorld,
    InstitutionWorld,
    OnboardingWorld,
    ReverificationWorld,
)
from workflows.housekeeping import SecurityHousekeepingWorkflow
from workflows.identity import IdentityVerificationWorkflow, identity_workflow_id
from workflows.institution import (
    REVERIFY_SCHEDULE_ID,
    InstitutionRegistrationWorkflow,
    InstitutionReverificationWorkflow,
    institution_workflow_id,
)
from workflows.onboarding import OnboardingWorkflow, onboarding_workflow_id


async def _awaiting_review(handle: WorkflowHandle) -> None:
    for _ in range(200):
        state: OnboardingState = await handle.query(OnboardingWorkflow.state)
        if state.status is ApplicationStatus.AWAITING_REVIEW:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the onboarding checks never finished")


async def onboarding_approved(recorder: Recorder) -> None:
    world = OnboardingWorld()
    async with world.running(recorder.client, "record-onboarding"):
        workflow_id = onboarding_workflow_id("stf-recorded-approved")
        handle = await recorder.client.start_workflow(
            OnboardingWorkflow.run,
            OnboardingInput(staff_id="stf-recorded-approved", attempt=1),
            id=workflow_id,
            task_queue="record-onboarding",
        )
        await _awaiting_review(handle)
        await handle.execute_update(OnboardingWorkflow.review, StaffReview(reviewer_user_id="u-admin", approve=True))
        await handle.result()
        await recorder.save(workflow_id, "Onboarding-checked_reviewed_approved")


async def onboarding_reminded_escalated_approved(recorder: Recorder) -> None:
    """The review deadline (patch `onboarding-review-deadline`), in seconds: a reminder, the escalation, then the
    admin's approval."""
    world = OnboardingWorld()
    async with world.running(recorder.client, "record-onboarding"):
        workflow_id = onboarding_workflow_id("stf-recorded-overdue")
        handle = await recorder.client.start_workflow(
            OnboardingWorkflow.run,
            OnboardingInput(staff_id="stf-recorded-overdue", attempt=1, review_window_s=2, review_reminders_s=[1]),
            id=workflow_id,
            task_queue="record-onboarding",
        )
        await _awaiting_review(handle)
        for _ in range(200):
            if (await handle.query(OnboardingWorkflow.state)).escalated_at is not None:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the review was never escalated")
        await handle.execute_update(OnboardingWorkflow.review, StaffReview(reviewer_user_id="u-admin", approve=True))
        await handle.result()
        await recorder.save(workflow_id, "Onboarding-reminded_escalated_approved")


async def onboarding_rejected_by_checks(recorder: Recorder) -> None:
    world = OnboardingWorld()
    world.registry = PractitionerRecord(found=False, reason="国家医师执业注册系统中未查询到该执业证书编码")
    async with world.running(recorder.client, "record-onboarding"):
        workflow_id = onboarding_workflow_id("stf-recorded-rejected")
        await recorder.client.execute_workflow(
            OnboardingWorkflow.run,
            OnboardingInput(staff_id="stf-recorded-rejected", attempt=1),
            id=workflow_id,
            task_queue="record-onboarding",
        )
        await recorder.save(workflow_id, "Onboarding-rejected_by_checks")


async def institution_approved(recorder: Recorder) -> None:
    world = InstitutionWorld()
    world.answers = [RegistrationStatus(state=RegistrationState.PENDING), *world.answers]
    async with world.running(recorder.client, "record-institution"):
        workflow_id = institution_workflow_id("inst-recorded")
        await recorder.client.execute_workflow(
            InstitutionRegistrationWorkflow.run,
            InstitutionInput(institution_id="inst-recorded", attempt=1, poll_every_s=1),
            id=workflow_id,
            task_queue="record-institution",
        )
        await recorder.save(workflow_id, "InstitutionRegistration-pending_approved_verified")


async def institution_reverified(recorder: Recorder) -> None:
    """A scheduled run: one approved institution confirmed, one the platform no longer confirms suspended."""
    world = ReverificationWorld({"inst-a": InstitutionStatus.APPROVED, "inst-b": InstitutionStatus.APPROVED})
    world.revoked = {"inst-b"}
    async with world.running(recorder.client, "record-institution-reverification"):
        workflow_id = f"{REVERIFY_SCHEDULE_ID}-recorded"
        await recorder.client.execute_workflow(
            InstitutionReverificationWorkflow.run,
            ReverificationInput(),
            id=workflow_id,
            task_queue="record-institution-reverification",
        )
        await recorder.save(workflow_id, "InstitutionReverification-confirmed_and_suspended")


async def identity_with_liveness(recorder: Recorder) -> None:
    world = IdentityWorld()
    world.liveness = LivenessResult(passed=False, score=31, reason="人脸与身份证照片不一致", provider_ref="SBLV1")
    check = IdentityCheckInput(patient_id="pat-liveness", submission="d" * 64, liveness_token="sandbox-other-face:1")
    async with world.running(recorder.client, "record-identity-liveness"):
        workflow_id = identity_workflow_id(check.patient_id, check.submission)
        await recorder.client.execute_workflow(
            IdentityVerificationWorkflow.run, check, id=workflow_id, task_queue="record-identity-liveness"
        )
        await recorder.save(workflow_id, "IdentityVerification-liveness_failed")


async def housekeeping(recorder: Recorder) -> None:
    world = HousekeepingWorld()
    async with world.running(recorder.client, "record-housekeeping"):
        workflow_id = "security-housekeeping-recorded"
        await recorder.client.execute_workflow(
            SecurityHousekeepingWorkflow.run,
            HousekeepingInput(login_failure_window_s=900),
            id=workflow_id,
            task_queue="record-housekeeping",
        )
        await recorder.save(workflow_id, "SecurityHousekeeping-purged")


SCENARIOS = {
    "Onboarding-checked_reviewed_approved": onboarding_approved,
    "Onboarding-rejected_by_checks": onboarding_rejected_by_checks,
    "Onboarding-reminded_escalated_approved": onboarding_reminded_escalated_approved,
    "InstitutionRegistration-pending_approved_verified": institution_approved,
    "InstitutionReverification-confirmed_and_suspended": institution_reverified,
    "IdentityVerification-liveness_failed": identity_with_liveness,
    "SecurityHousekeeping-purged": housekeeping,
}


if __name__ == "__main__":
    main(SCENARIOS)

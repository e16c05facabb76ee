"""Onboarding (8.5.2 doctors, 8.5.3 pharmacists): a submitted application is checked, reviewed and decided.

  checking ─checks pass→ awaiting_review ─admin approves→ approved (the doctor/pharmacist profile is created)
      │                         └─admin rejects (with a reason)→ rejected
      └─a check fails→ rejected (the failed checks are the reason)
The documents' SM3 digests go to the evidence ledger first; a doctor's licence is looked up in the national
practitioner registry and needs three years of independent practice; a third-party pharmacist needs a signed
agreement. The applicant hears the result through the notifier either way and may submit again after a rejection,
which starts a new run under the same id.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.onboarding import OnboardingActivities
    from models.common import HOSPITAL_TZ
    from models.onboarding import (
        ApplicationFacts,
        ApplicationStatus,
        OnboardingDecision,
        OnboardingInput,
        OnboardingState,
        PractitionerRecord,
        StaffReview,
        StaffRole,
        assess,
    )
    from workflows.steps import Notices, call, db


SYSTEM_REVIEWER = "system"
_ROLE_NAMES = {StaffRole.DOCTOR: "医生", StaffRole.PHARMACIST: "药师"}


def onboarding_workflow_id(staff_id: str) -> str:
    return f"onboard-{staff_id}"


@workflow.defn(name="Onboarding")
class OnboardingWorkflow:
    @workflow.init
    def __init__(self, run: OnboardingInput) -> None:
        self._state = OnboardingState(staff_id=run.staff_id, attempt=run.attempt, status=ApplicationStatus.CHECKING)
        self._review: StaffReview | None = None
        self._recorded = False

    @workflow.run
    async def run(self, run: OnboardingInput) -> OnboardingState:
        facts: ApplicationFacts = await db(OnboardingActivities.application_facts, run)
        self._state.evidence_seqs = await db(OnboardingActivities.put_documents_on_record, run)
        registry: PractitionerRecord | None = None
        if facts.role is StaffRole.DOCTOR:
            registry = await call(OnboardingActivities.lookup_practitioner, run)
        self._state.checks = assess(facts, registry, workflow.now().astimezone(HOSPITAL_TZ).date())
        failed = [check.detail for check in self._state.checks if not check.passed]
        if failed:
            self._state.status = ApplicationStatus.REJECTED
            self._state.decided_by, self._state.reason = SYSTEM_REVIEWER, "；".join(failed)
        else:
            self._state.status = ApplicationStatus.AWAITING_REVIEW
        await db(OnboardingActivities.record_checks, self._state)

        if not failed:
            await workflow.wait_condition(lambda: self._review is not None)
            review = self._review
            assert review is not None
            self._state.status = ApplicationStatus.APPROVED if review.approve else ApplicationStatus.REJECTED
            self._state.decided_by, self._state.reason = review.reviewer_user_id, review.reason
        self._state.decided_at = workflow.now()
        approved = self._state.status is ApplicationStatus.APPROVED
        await db(
            OnboardingActivities.finish_onboarding,
            OnboardingDecision(
                staff_id=run.staff_id,
                attempt=run.attempt,
                approved=approved,
                decided_by=self._state.decided_by or SYSTEM_REVIEWER,
                reason=self._state.reason,
            ),
        )
        self._recorded = True
        notices = Notices()
        role = _ROLE_NAMES[facts.role]
        if approved:
            notices.send(f"approved-{run.attempt}", f"applicant:{run.staff_id}", "onboarding_approved", role=role)
        else:
            notices.send(
                f"rejected-{run.attempt}",
                f"applicant:{run.staff_id}",
                "onboarding_rejected",
                role=role,
                reason=self._state.reason or "",
            )
        await notices.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    @workflow.update
    async def review(self, review: StaffReview) -> OnboardingState:
        """An admin's decision; answers once it is recorded (and, on approval, the account works as staff)."""
        self._review = review
        await workflow.wait_condition(lambda: self._recorded)
        return self._state

    @review.validator
    def _validate_review(self, review: StaffReview) -> None:
        if self._state.status is not ApplicationStatus.AWAITING_REVIEW or self._review is not None:
            raise ApplicationError("该申请当前不在待审核状态", type="APPLICATION_NOT_AWAITING_REVIEW")
        if not review.approve and not (review.reason or "").strip():
            raise ApplicationError("驳回申请须填写理由", type="REASON_REQUIRED")

    @workflow.query
    def state(self) -> OnboardingState:
        return self._state

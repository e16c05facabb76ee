"""Onboarding (8.5.2 doctors, 8.5.3 pharmacists): a submitted application is checked, reviewed and decided.

  checking ─checks pass→ awaiting_review ─admin approves→ approved (the doctor/pharmacist profile is created)
      │                         └─admin rejects (with a reason)→ rejected
      └─a check fails→ rejected (the failed checks are the reason)
The documents' SM3 digests go to the evidence ledger first; a doctor's licence is looked up in the national
practitioner registry and needs three years of independent practice; a third-party pharmacist needs a signed
agreement. The applicant hears the result through the notifier either way and may submit again after a rejection,
which starts a new run under the same id.

The review is due `review_window_s` after the checks pass: the admins are reminded `review_reminders_s` before the
deadline, and when it passes undecided the application is escalated to every admin. It stays awaiting review (the
applicant did all that was asked; sending it back would make them pay for the hospital's delay) and is never
decided by the clock. Flows started before the deadline existed keep waiting without one (patch
`onboarding-review-deadline`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

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
    from workflows.steps import Notices, call, db, local


SYSTEM_REVIEWER = "system"
REVIEW_DEADLINE_PATCH = "onboarding-review-deadline"
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
        # Asked before any step, so a flow that started without a review deadline replays as it ran.
        with_deadline = workflow.patched(REVIEW_DEADLINE_PATCH) and run.review_window_s is not None
        notices = Notices()
        facts: ApplicationFacts = await db(OnboardingActivities.application_facts, run)
        role = _ROLE_NAMES[facts.role]
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
            if with_deadline:
                assert run.review_window_s is not None
                self._state.review_due_at = workflow.now() + timedelta(seconds=run.review_window_s)
        await db(OnboardingActivities.record_checks, self._state)

        if not failed:
            if with_deadline:
                await self._review_before_deadline(run, role, notices)
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

    async def _review_before_deadline(self, run: OnboardingInput, role: str, notices: Notices) -> None:
        """Wait for the review until it is due, reminding the admins on the way; past the deadline, record the
        escalation and tell every admin. Returns once reviewed or escalated; the caller waits on for the review."""
        due = self._state.review_due_at
        assert due is not None
        params = {"role": role, "staff_id": run.staff_id, "due": local(due, "%Y-%m-%d %H:%M")}
        for lead_s in sorted(set(run.review_reminders_s), reverse=True):
            remind_at = due - timedelta(seconds=lead_s)
            if remind_at <= workflow.now():
                continue  # a reminder longer before the deadline than the whole window
            if await self._reviewed_by(remind_at):
                return
            notices.send(
                f"review-reminder-{run.attempt}-{lead_s}", "role:admin", "onboarding_review_reminder", **params
            )
        if await self._reviewed_by(due):
            return
        self._state.escalated_at = workflow.now()
        await db(OnboardingActivities.record_checks, self._state)
        notices.send(f"review-overdue-{run.attempt}", "role:admin", "onboarding_review_overdue", **params)

    async def _reviewed_by(self, moment: datetime) -> bool:
        """Whether the review came before `moment` (a durable timer; none once the moment has passed)."""
        left = moment - workflow.now()
        if left > timedelta(0):
            try:
                await workflow.wait_condition(lambda: self._review is not None, timeout=left)
            except TimeoutError:
                return False
        return self._review is not None

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

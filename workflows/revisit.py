"""RevisitCheck (8.1.2): may this patient follow up this disease online?

Only a disease diagnosed at an offline visit of this hospital within the window qualifies. The evidence comes from
the HIS, the EMR and the regional health-record platform (as configured), and from records the patient uploaded
(images, PDF) once a doctor approved them. The decision and the evidence it rests on are stored (8.1.2.2); an
eligible result stays open until its expiry, so asking again in that time returns the same decision instead of
checking twice.

With nothing found but uploads waiting for review, the decision is `pending_review` until a reviewer decides
(`review_upload`): an approval makes the patient eligible, rejections of every upload make them not eligible. An
upload made while the check is open joins it (`add_upload`).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.revisit import RevisitActivities
    from models.revisit import (
        OfflineDiagnosis,
        RevisitCheckInput,
        RevisitDecision,
        RevisitEvidenceQuery,
        RevisitStatus,
        UploadReview,
        UploadSubmitted,
    )
    from workflows.steps import Notices, call, db, refusal


# Uploads reviewed by a doctor count as evidence; earlier checks knew only HIS/EMR.
REVIEWED_UPLOADS = "reviewed-uploads"


def revisit_workflow_id(patient_id: str, disease_code: str) -> str:
    return f"revisit-{patient_id}-{disease_code}"


@workflow.defn(name="RevisitCheck")
class RevisitCheckWorkflow:
    @workflow.init
    def __init__(self, check: RevisitCheckInput) -> None:
        self._check = check
        self._decision = RevisitDecision(
            patient_id=check.patient_id, disease_code=check.disease_code, status=RevisitStatus.CHECKING
        )
        self._notices = Notices()
        # Uploads waiting for a reviewer, and whether the ones stored before this run have been looked up.
        self._pending: list[str] = []
        self._reviewed: list[str] = []
        self._loaded = False
        self._lock = asyncio.Lock()

    @workflow.run
    async def run(self, check: RevisitCheckInput) -> RevisitDecision:
        now = workflow.now()
        evidence: list[OfflineDiagnosis] = await call(
            RevisitActivities.find_revisit_evidence,
            RevisitEvidenceQuery(
                patient_id=check.patient_id,
                disease_code=check.disease_code,
                since=now - timedelta(days=check.window_days),
            ),
        )
        if workflow.patched(REVIEWED_UPLOADS):
            stored: list[str] = await db(RevisitActivities.pending_uploads, check)
            self._pending += [upload for upload in stored if upload not in self._pending]
        self._loaded = True
        decision = self._decision
        decision.decided_at = now
        decision.evidence = evidence
        if evidence:
            self._make_eligible(evidence[0])
        elif self._pending:
            self._await_review()
        else:
            self._make_not_eligible(f"未找到近{check.window_days}天内本院线下同病种就诊记录，暂不能在线复诊")
        await db(RevisitActivities.record_revisit_decision, decision)

        while True:
            if decision.status is RevisitStatus.PENDING_REVIEW:
                await workflow.wait_condition(lambda: self._decision.status is not RevisitStatus.PENDING_REVIEW)
                continue
            if decision.status is RevisitStatus.ELIGIBLE and decision.valid_until is not None:
                await workflow.sleep(decision.valid_until - workflow.now())
                decision.status = RevisitStatus.EXPIRED
                await db(RevisitActivities.record_revisit_decision, decision)
            await self._notices.flush()
            await workflow.wait_condition(workflow.all_handlers_finished)
            # An upload that arrived as the check was closing reopens it for review.
            if decision.status is not RevisitStatus.PENDING_REVIEW:
                return decision

    def _make_eligible(self, evidence: OfflineDiagnosis) -> None:
        decision = self._decision
        decision.status = RevisitStatus.ELIGIBLE
        decision.disease_name = evidence.disease_name
        decision.valid_until = workflow.now() + timedelta(days=self._check.valid_days)
        decision.reason = None

    def _await_review(self) -> None:
        self._decision.status = RevisitStatus.PENDING_REVIEW
        self._decision.reason = "未找到本院线下同病种就诊记录，您上传的就诊资料正在等待医生审核"

    def _make_not_eligible(self, reason: str) -> None:
        self._decision.status = RevisitStatus.NOT_ELIGIBLE
        self._decision.reason = reason

    # --- messages ---

    @workflow.update
    async def decision(self) -> RevisitDecision:
        """Wait for the decision (callers use Update-with-Start and get it in one round trip)."""
        await workflow.wait_condition(lambda: self._decision.status is not RevisitStatus.CHECKING)
        return self._decision

    @workflow.update
    async def add_upload(self, upload: UploadSubmitted) -> RevisitDecision:
        """A record the patient just uploaded: without other evidence the decision waits for its review."""
        await workflow.wait_condition(lambda: self._loaded and self._decision.status is not RevisitStatus.CHECKING)
        async with self._lock:
            if upload.upload_id in self._pending or upload.upload_id in self._reviewed:
                return self._decision
            self._pending.append(upload.upload_id)
            if self._decision.status in (RevisitStatus.NOT_ELIGIBLE, RevisitStatus.EXPIRED):
                self._decision.decided_at = workflow.now()
                self._await_review()
                await db(RevisitActivities.record_revisit_decision, self._decision)
        return self._decision

    @workflow.update
    async def review_upload(self, review: UploadReview) -> RevisitDecision:
        """A doctor approves or rejects an upload; approved, it is evidence of the offline diagnosis."""
        await workflow.wait_condition(lambda: self._loaded)
        async with self._lock:
            if review.upload_id not in self._pending:
                raise ApplicationError("该资料不在待审核状态", type="UPLOAD_NOT_PENDING")
            try:
                evidence: OfflineDiagnosis | None = await db(RevisitActivities.review_upload, self._check, review)
            except (ActivityError, ApplicationError) as failure:
                raise refusal(failure, "REVIEW_FAILED", "审核未能保存，请稍后重试") from None
            self._pending.remove(review.upload_id)
            self._reviewed.append(review.upload_id)
            decision = self._decision
            if evidence is not None:
                decision.evidence = sorted([evidence, *decision.evidence], key=lambda e: e.diagnosed_at, reverse=True)
                if decision.status is not RevisitStatus.ELIGIBLE:
                    decision.decided_at = workflow.now()
                    self._make_eligible(evidence)
                self._notices.send(f"upload-approved:{review.upload_id}", self._patient, "revisit_upload_approved")
            else:
                if decision.status is RevisitStatus.PENDING_REVIEW and not self._pending:
                    decision.decided_at = workflow.now()
                    self._make_not_eligible(f"上传的就诊资料未通过审核：{review.reason}")
                self._notices.send(
                    f"upload-rejected:{review.upload_id}",
                    self._patient,
                    "revisit_upload_rejected",
                    reason=review.reason,
                )
            await db(RevisitActivities.record_revisit_decision, decision)
        return self._decision

    @review_upload.validator
    def _validate_review_upload(self, review: UploadReview) -> None:
        if not review.approve and not review.reason.strip():
            raise ApplicationError("驳回上传资料须填写理由", type="REVIEW_REASON_REQUIRED")
        if self._loaded and review.upload_id not in self._pending:
            raise ApplicationError("该资料不在待审核状态", type="UPLOAD_NOT_PENDING")

    @property
    def _patient(self) -> str:
        return f"patient:{self._check.patient_id}"

    @workflow.query
    def current(self) -> RevisitDecision:
        return self._decision

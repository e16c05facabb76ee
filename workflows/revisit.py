"""RevisitCheck (8.1.2): may this patient follow up this disease online?

Only a disease diagnosed at an offline visit of this hospital within the window qualifies. The decision and the
HIS records it rests on are stored (8.1.2.2); an eligible result stays open until its expiry, so asking again in
that time returns the same decision instead of checking twice.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.revisit import RevisitActivities
    from models.revisit import (
        OfflineDiagnosis,
        RevisitCheckInput,
        RevisitDecision,
        RevisitEvidenceQuery,
        RevisitStatus,
    )
    from workflows.steps import call, db


def revisit_workflow_id(patient_id: str, disease_code: str) -> str:
    return f"revisit-{patient_id}-{disease_code}"


@workflow.defn(name="RevisitCheck")
class RevisitCheckWorkflow:
    @workflow.init
    def __init__(self, check: RevisitCheckInput) -> None:
        self._decision = RevisitDecision(
            patient_id=check.patient_id, disease_code=check.disease_code, status=RevisitStatus.CHECKING
        )

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
        decision = self._decision
        decision.decided_at = now
        decision.evidence = evidence
        if evidence:
            decision.status = RevisitStatus.ELIGIBLE
            decision.disease_name = evidence[0].disease_name
            decision.valid_until = now + timedelta(days=check.valid_days)
        else:
            decision.status = RevisitStatus.NOT_ELIGIBLE
            decision.reason = f"未找到近{check.window_days}天内本院线下同病种就诊记录，暂不能在线复诊"
        await db(RevisitActivities.record_revisit_decision, decision)

        if decision.status is RevisitStatus.ELIGIBLE and decision.valid_until is not None:
            await workflow.sleep(decision.valid_until - now)
            decision.status = RevisitStatus.EXPIRED
            await db(RevisitActivities.record_revisit_decision, decision)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return decision

    @workflow.update
    async def decision(self) -> RevisitDecision:
        """Wait for the decision (callers use Update-with-Start and get it in one round trip)."""
        await workflow.wait_condition(lambda: self._decision.status is not RevisitStatus.CHECKING)
        return self._decision

    @workflow.query
    def current(self) -> RevisitDecision:
        return self._decision

"""Deliberately altered copies of two workflows, registered under the real names, for the test that shows a
non-deterministic change fails replay. A module of its own, because the workflow sandbox re-imports the module a
workflow is defined in, and a test module (pytest, fixtures) does not import cleanly there.

Never register these with a real worker.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.identity import IdentityActivities
    from activities.revisit import RevisitActivities
    from models.identity import IdentityCheckInput, RealNameResult
    from models.revisit import (
        OfflineDiagnosis,
        RevisitCheckInput,
        RevisitDecision,
        RevisitEvidenceQuery,
        RevisitStatus,
    )

from workflows.steps import Notices, call, db


@workflow.defn(name="IdentityVerification")
class IdentityWithAnExtraStep:
    """workflows/identity.py with one notice sent before the check: one activity command more than recorded."""

    @workflow.run
    async def run(self, check: IdentityCheckInput) -> RealNameResult:
        patient = f"patient:{check.patient_id}"
        notices = Notices()
        notices.send("checking", patient, "identity_checking")  # the change
        result: RealNameResult = await call(IdentityActivities.verify_identity, check)
        await db(IdentityActivities.record_identity_result, check, result)
        if result.matched:
            notices.send("verified", patient, "identity_verified")
        else:
            notices.send("rejected", patient, "identity_rejected", reason=result.reason or "")
        await notices.flush()
        return result


@workflow.defn(name="RevisitCheck")
class RevisitCheckWithoutTheExpiryTimer:
    """workflows/revisit.py with the sleep until expiry dropped: an eligible decision expires at once, no timer."""

    def __init__(self) -> None:
        self._decision: RevisitDecision | None = None

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
        decision = RevisitDecision(
            patient_id=check.patient_id,
            disease_code=check.disease_code,
            status=RevisitStatus.ELIGIBLE if evidence else RevisitStatus.NOT_ELIGIBLE,
            decided_at=now,
            evidence=evidence,
        )
        self._decision = decision
        await db(RevisitActivities.record_revisit_decision, decision)
        if decision.status is RevisitStatus.ELIGIBLE:
            decision.status = RevisitStatus.EXPIRED  # the change: no `workflow.sleep(valid_until - now)` first
            await db(RevisitActivities.record_revisit_decision, decision)
        return decision

    @workflow.update
    async def decision(self) -> RevisitDecision:
        await workflow.wait_condition(lambda: self._decision is not None)
        assert self._decision is not None
        return self._decision

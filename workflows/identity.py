"""IdentityVerification (8.5.1): the patient's submitted real-name data checked through the real-name adapter."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.identity import IdentityActivities
    from models.identity import IdentityCheckInput, LivenessResult, RealNameResult
    from workflows.steps import Notices, call, db


def identity_workflow_id(patient_id: str, submission: str) -> str:
    return f"identity-{patient_id}-{submission[:16]}"


@workflow.defn(name="IdentityVerification")
class IdentityVerificationWorkflow:
    @workflow.run
    async def run(self, check: IdentityCheckInput) -> RealNameResult:
        result: RealNameResult = await call(IdentityActivities.verify_identity, check)
        # Only submissions made with a liveness provider configured carry a token (older flows never take this branch,
        # so their histories replay unchanged): the face must also be the ID card's holder, seen live (8.5.1.4).
        if result.matched and check.liveness_token is not None:
            liveness: LivenessResult = await call(IdentityActivities.check_liveness, check)
            await db(IdentityActivities.record_liveness, check, liveness)
            if not liveness.passed:
                result = RealNameResult(matched=False, reason=liveness.reason or "活体检测未通过")
        await db(IdentityActivities.record_identity_result, check, result)
        patient = f"patient:{check.patient_id}"
        notices = Notices()
        if result.matched:
            notices.send("verified", patient, "identity_verified")
        else:
            notices.send("rejected", patient, "identity_rejected", reason=result.reason or "")
        await notices.flush()
        return result

"""AdverseReaction (8.3.9.4 用药不良反应快速反馈): a patient reports a reaction to a delivered prescription; the
dispensing pharmacist, the pharmacists on duty and the prescribing doctor are told at once (the admins too when it is
severe); a pharmacist answers with advice, which reaches the patient. Unanswered past the response SLA, the admins
and the pharmacists on duty are reminded, and the report stays open until answered.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.aftercare import AftercareActivities
    from models.aftercare import (
        AdverseReactionInput,
        AdverseReactionResponse,
        AdverseReactionState,
        ReactionAction,
        ReactionSeverity,
        ReactionStage,
    )
    from models.duty import ON_DUTY_PHARMACISTS
    from workflows.steps import Notices, db


SEVERITY_TEXT = {
    ReactionSeverity.MILD: "轻度",
    ReactionSeverity.MODERATE: "中度",
    ReactionSeverity.SEVERE: "重度",
}
ACTION_TEXT = {
    ReactionAction.CONTINUE: "可继续服药，注意观察",
    ReactionAction.STOP: "请暂停服药",
    ReactionAction.SEE_DOCTOR: "请尽快就医",
}


def adverse_reaction_workflow_id(report_id: str) -> str:
    return f"adr-{report_id}"


@workflow.defn(name="AdverseReaction")
class AdverseReactionWorkflow:
    @workflow.init
    def __init__(self, report: AdverseReactionInput) -> None:
        self._report = report
        self._notices = Notices()
        self._state = AdverseReactionState(
            report_id=report.report_id,
            prescription_id=report.prescription_id,
            stage=ReactionStage.OPEN,
            severity=report.severity,
        )
        self._lock = asyncio.Lock()

    @workflow.run
    async def run(self, report: AdverseReactionInput) -> AdverseReactionState:
        await self._record()
        params = {
            "prescription_id": report.prescription_id,
            "report_id": report.report_id,
            "severity": SEVERITY_TEXT[report.severity],
        }
        staff = [ON_DUTY_PHARMACISTS, f"doctor:{report.doctor_id}"]
        if report.dispensing_pharmacist_id:
            staff.insert(0, f"pharmacist:{report.dispensing_pharmacist_id}")
        if report.severity is ReactionSeverity.SEVERE:
            staff.append("role:admin")
        for n, recipient in enumerate(staff):
            self._notices.send(f"reported-{n}", recipient, "adverse_reaction_reported", **params)
        self._notices.send(
            "received",
            f"patient:{report.patient_id}",
            "adverse_reaction_received_severe"
            if report.severity is ReactionSeverity.SEVERE
            else "adverse_reaction_received",
            prescription_id=report.prescription_id,
        )
        answered = lambda: self._state.response is not None and not self._lock.locked()  # noqa: E731
        try:
            await workflow.wait_condition(answered, timeout=timedelta(seconds=report.response_sla_s))
        except TimeoutError:
            self._state.overdue = True
            await self._record()
            for n, recipient in enumerate(("role:admin", ON_DUTY_PHARMACISTS)):
                self._notices.send(f"overdue-{n}", recipient, "adverse_reaction_overdue", **params)
            await workflow.wait_condition(answered)
        response = self._state.response
        assert response is not None
        self._notices.send(
            "answered",
            f"patient:{report.patient_id}",
            "adverse_reaction_answered",
            prescription_id=report.prescription_id,
            action=ACTION_TEXT[response.action],
            advice=response.advice,
        )
        await self._notices.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _record(self) -> None:
        await db(AftercareActivities.record_adverse_reaction, self._report, self._state)

    @workflow.update
    async def respond(self, response: AdverseReactionResponse) -> AdverseReactionState:
        async with self._lock:
            # Two answers may pass their validators in one workflow task: the first to run answers.
            if self._state.stage is not ReactionStage.OPEN:
                raise ApplicationError("该不良反应报告已答复", type="ADVERSE_REACTION_ANSWERED")
            self._state.response = response
            self._state.responded_at = workflow.now()
            self._state.stage = ReactionStage.RESPONDED
            await self._record()
        return self._state

    @respond.validator
    def _validate_respond(self, response: AdverseReactionResponse) -> None:
        if self._state.stage is not ReactionStage.OPEN or self._lock.locked():
            raise ApplicationError("该不良反应报告已答复", type="ADVERSE_REACTION_ANSWERED")
        if not response.advice.strip():
            raise ApplicationError("请填写用药建议", type="REASON_REQUIRED")

    @workflow.query
    def state(self) -> AdverseReactionState:
        return self._state

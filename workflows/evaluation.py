"""EvaluationFollowUp (8.6.7 c): a low rating waits for the staff who handle feedback.

started ─notice to the feedback handlers→ waiting ─every `remind_every_s`: a reminder→ …
waiting ─`handle` (what was done)→ handled
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.evaluations import EvaluationActivities
    from models.evaluation import EvaluationFollowUpInput, EvaluationFollowUpState, HandleEvaluation
    from models.notify import FEEDBACK_HANDLERS
    from workflows.steps import Notices, db


def evaluation_workflow_id(evaluation_id: str) -> str:
    return f"evaluation-{evaluation_id}"


@workflow.defn(name="EvaluationFollowUp")
class EvaluationFollowUpWorkflow:
    @workflow.init
    def __init__(self, run: EvaluationFollowUpInput) -> None:
        self._run = run
        self._state = EvaluationFollowUpState()
        self._notices = Notices()
        # Set once a handling is being recorded, so a second one arriving meanwhile is refused, not recorded too.
        self._handling = False

    @workflow.run
    async def run(self, run: EvaluationFollowUpInput) -> EvaluationFollowUpState:
        self._notices.send(
            "received",
            FEEDBACK_HANDLERS,
            "evaluation_low",
            visit_id=run.visit_id,
            doctor=run.doctor_name,
            doctor_rating=str(run.doctor_rating),
            department_rating=str(run.department_rating),
            hospital_rating=str(run.hospital_rating),
            comment=run.comment or "（未填写评价内容）",
        )
        while True:
            try:
                await workflow.wait_condition(
                    lambda: self._state.handled, timeout=timedelta(seconds=run.remind_every_s)
                )
                break
            except TimeoutError:
                self._state.reminders += 1
                self._notices.send(
                    f"reminder-{self._state.reminders}",
                    FEEDBACK_HANDLERS,
                    "evaluation_reminder",
                    visit_id=run.visit_id,
                    doctor=run.doctor_name,
                )
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._notices.flush()
        return self._state

    @workflow.update
    async def handle(self, handling: HandleEvaluation) -> EvaluationFollowUpState:
        self._handling = True
        await db(EvaluationActivities.record_handling, self._run.evaluation_id, handling)
        self._state.handled, self._state.handled_by, self._state.note = True, handling.handled_by, handling.note
        return self._state

    @handle.validator
    def _check_handle(self, handling: HandleEvaluation) -> None:
        if self._handling:
            raise ApplicationError("该评价已处理", type="EVALUATION_HANDLED", non_retryable=True)

    @workflow.query
    def state(self) -> EvaluationFollowUpState:
        return self._state

"""Complaint (8.6.7 e 投诉处理): a patient's complaint about one of their orders waits for the hospital's answer.

  open ─an admin answers (Update `respond`)→ answered (the patient is told the answer)

The admins hear of it at once, with the time the answer is due (`answer_within_s` later). While it is unanswered
they are reminded every `remind_every_s` before that deadline; when the deadline passes the escalation is recorded
and every admin is told once. The complaint then keeps waiting: only an answer ends it, never the clock (closing it
unanswered would leave the patient without the feedback they are owed).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.complaints import ComplaintActivities
    from models.complaint import ComplaintInput, ComplaintResponse, ComplaintState, ComplaintStatus
    from models.notify import FEEDBACK_HANDLERS
    from workflows.steps import Notices, db, local

# Past the deadline it goes to every admin (督办), not only those handling feedback.
ADMINS = "role:admin"


def complaint_workflow_id(complaint_id: str) -> str:
    return f"complaint-{complaint_id}"


def _already_answered() -> ApplicationError:
    return ApplicationError("该投诉已答复", type="COMPLAINT_ANSWERED", non_retryable=True)


@workflow.defn(name="Complaint")
class ComplaintWorkflow:
    @workflow.init
    def __init__(self, run: ComplaintInput) -> None:
        self._run = run
        self._notices = Notices()
        self._state = ComplaintState(complaint_id=run.complaint_id, status=ComplaintStatus.OPEN)
        # Set as soon as an answer is accepted, before it is recorded: the deadline no longer applies to it.
        self._answer: ComplaintResponse | None = None

    @workflow.run
    async def run(self, run: ComplaintInput) -> ComplaintState:
        started = workflow.now()
        due = started + timedelta(seconds=run.answer_within_s)
        self._state.due_at = due
        due_text = local(due, "%Y-%m-%d %H:%M")
        self._notices.send(
            "received",
            FEEDBACK_HANDLERS,
            "complaint_received",
            complaint_id=run.complaint_id,
            category=run.category_name,
            subject=run.subject,
            text=run.text,
            due=due_text,
        )
        if not await self._answered_before_deadline(started, due, due_text):
            self._state.escalated = True
            await db(ComplaintActivities.record_escalation, run.complaint_id)
            self._notices.send("overdue", ADMINS, "complaint_overdue", complaint_id=run.complaint_id, due=due_text)
        await workflow.wait_condition(lambda: self._state.status is ComplaintStatus.ANSWERED)
        await self._notices.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _answered_before_deadline(self, started: datetime, due: datetime, due_text: str) -> bool:
        """Remind the admins every `remind_every_s` until the answer comes or the deadline is reached."""
        every = timedelta(seconds=self._run.remind_every_s)
        n = 1
        while started + n * every < due:
            if await self._answered_by(started + n * every):
                return True
            self._notices.send(
                f"reminder-{n}",
                FEEDBACK_HANDLERS,
                "complaint_reminder",
                complaint_id=self._run.complaint_id,
                due=due_text,
            )
            n += 1
        return await self._answered_by(due)

    async def _answered_by(self, moment: datetime) -> bool:
        """Whether the answer came before `moment` (a durable timer; none once the moment has passed)."""
        left = moment - workflow.now()
        if left > timedelta(0):
            try:
                await workflow.wait_condition(lambda: self._answer is not None, timeout=left)
            except TimeoutError:
                return False
        return self._answer is not None

    @workflow.update
    async def respond(self, answer: ComplaintResponse) -> ComplaintState:
        """An admin's answer; returns once it is recorded, and the patient is told it."""
        # Two answers may pass the validator in one workflow task: the first to run answers.
        if self._answer is not None:
            raise _already_answered()
        self._answer = answer
        responded_at = workflow.now()
        await db(ComplaintActivities.record_response, self._run.complaint_id, answer, responded_at)
        self._state.status = ComplaintStatus.ANSWERED
        self._state.response = answer.response
        self._state.responded_by = answer.responder_id
        self._state.responded_at = responded_at
        self._notices.send(
            "answered",
            self._run.patient_ref,
            "complaint_answered",
            subject=self._run.subject,
            complaint_id=self._run.complaint_id,
            response=answer.response,
        )
        return self._state

    @respond.validator
    def _validate_respond(self, answer: ComplaintResponse) -> None:
        if self._answer is not None:
            raise _already_answered()

    @workflow.query
    def state(self) -> ComplaintState:
        return self._state

"""ScheduleChange (8.1.1.5, 8.1.3): a doctor's leave (停诊) or substitution (替诊) of one schedule.

Started by the API through Update-with-Start (`begin`), which answers once the change is recorded or refused.
  recording ─recorded→ in_progress ─every visit has an outcome→ done
      └─ refused (the schedule was changed already, or is over)
Recording changes the schedule and its slots and lists every visit holding one of them, in one transaction. Each
visit is then told by signal. The fan-out is part of this flow's history, so a worker that dies midway resumes where
it stopped and nobody is missed; each visit answers with its progress (offered, substituted, rebooked, refunded, …)
and the flow ends when every one has an outcome.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.schedule_changes import ScheduleChangeActivities
    from models.schedule_change import (
        FINAL_OUTCOMES,
        AffectedVisit,
        ChangeKind,
        ChangeStatus,
        ScheduleChangeInput,
        ScheduleChangeNotice,
        ScheduleChangeState,
        VisitChangeProgress,
        VisitOutcome,
    )
    from workflows.steps import Notices, db, local
    from workflows.visit import CHANGE_PROGRESS_SIGNAL, VisitWorkflow, refusal, visit_workflow_id


_WHAT = {ChangeKind.LEAVE: "停诊", ChangeKind.SUBSTITUTION: "替诊"}


def schedule_change_workflow_id(change_id: str) -> str:
    return f"schedule-change-{change_id}"


@workflow.defn(name="ScheduleChange")
class ScheduleChangeWorkflow:
    @workflow.init
    def __init__(self, change: ScheduleChangeInput) -> None:
        self._notices = Notices()
        self._state = ScheduleChangeState(
            change_id=change.change_id,
            schedule_id=change.schedule_id,
            kind=change.kind,
            status=ChangeStatus.RECORDING,
            reason=change.reason,
            substitute_doctor_id=change.substitute_doctor_id,
        )

    @workflow.run
    async def run(self, change: ScheduleChangeInput) -> ScheduleChangeState:
        try:
            affected: list[AffectedVisit] = await db(ScheduleChangeActivities.record_change, change)
        except (ActivityError, ApplicationError) as failure:
            refused = refusal(failure, "SCHEDULE_CHANGE_FAILED", "排班调整未能完成")
            self._state.status = ChangeStatus.REFUSED
            self._state.refusal_code, self._state.refusal = refused.type, refused.message
            return await self._result()

        deadline = workflow.now() + timedelta(seconds=change.choice_window_s)
        if change.kind is ChangeKind.LEAVE:
            self._state.choice_deadline = deadline
        self._state.visits = affected
        self._state.status = ChangeStatus.IN_PROGRESS
        if change.kind is ChangeKind.SUBSTITUTION:
            self._notices.send(
                "substitute",
                f"doctor:{change.substitute_doctor_id}",
                "schedule_substitute",
                doctor=change.doctor_name,
                time=local(change.starts_at),
                count=str(len(affected)),
            )
        await asyncio.gather(*(self._tell(change, visit, deadline) for visit in affected))
        await workflow.wait_condition(lambda: all(visit.outcome in FINAL_OUTCOMES for visit in self._state.visits))

        await db(ScheduleChangeActivities.finish_change, change.change_id)
        self._state.status = ChangeStatus.DONE
        outcomes = Counter(visit.outcome for visit in self._state.visits)
        self._notices.send(
            "done",
            f"doctor:{change.doctor_id}",
            "schedule_change_done",
            time=local(change.starts_at),
            what=_WHAT[change.kind],
            count=str(len(self._state.visits)),
            rebooked=str(outcomes[VisitOutcome.REBOOKED]),
            refunded=str(outcomes[VisitOutcome.REFUNDED]),
            substituted=str(outcomes[VisitOutcome.SUBSTITUTED]),
            cancelled=str(outcomes[VisitOutcome.CANCELLED]),
        )
        return await self._result()

    async def _tell(self, change: ScheduleChangeInput, visit: AffectedVisit, deadline: datetime) -> None:
        notice = ScheduleChangeNotice(
            change_id=change.change_id,
            reply_to=workflow.info().workflow_id,
            kind=change.kind,
            slot_id=visit.slot_id,
            reason=change.reason,
            doctor_name=change.doctor_name,
            substitute_doctor_id=change.substitute_doctor_id,
            substitute_name=change.substitute_name,
            choice_deadline=deadline,
        )
        handle: workflow.ExternalWorkflowHandle[VisitWorkflow] = workflow.get_external_workflow_handle_for(
            VisitWorkflow.run, visit_workflow_id(visit.visit_id)
        )
        try:
            await handle.signal(VisitWorkflow.schedule_changed, notice)
        except ApplicationError:
            # The visit already ended (or its flow never started after the slot was held): nothing left to change.
            self._record(visit.visit_id, VisitOutcome.NOT_AFFECTED, "复诊流程已结束")

    def _record(self, visit_id: str, outcome: VisitOutcome, detail: str) -> None:
        for visit in self._state.visits:
            # An outcome is final; a late "offered" never overwrites "rebooked".
            if visit.visit_id == visit_id and visit.outcome not in FINAL_OUTCOMES:
                visit.outcome = outcome
                visit.detail = detail

    async def _result(self) -> ScheduleChangeState:
        await self._notices.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    @workflow.signal(name=CHANGE_PROGRESS_SIGNAL)
    def visit_progress(self, progress: VisitChangeProgress) -> None:
        if progress.change_id == self._state.change_id:
            self._record(progress.visit_id, progress.outcome, progress.detail)

    @workflow.update
    async def begin(self) -> ScheduleChangeState:
        """Answer the request once the change is recorded, or refuse it with the reason."""
        await workflow.wait_condition(lambda: self._state.status is not ChangeStatus.RECORDING)
        if self._state.status is ChangeStatus.REFUSED:
            raise ApplicationError(self._state.refusal or "", type=self._state.refusal_code)
        return self._state

    @workflow.query
    def state(self) -> ScheduleChangeState:
        return self._state

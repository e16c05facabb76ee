"""RefillReminder (8.3.9.4 续方提醒): started by Fulfilment when the patient signs for the medicine, it sleeps until
shortly before the prescribed days run out, then offers the patient a renewal (续方) by a follow-up visit with the
doctor, unless the prescription was renewed meanwhile."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.aftercare import AftercareActivities
    from models.fulfilment import RefillInput, RefillPlan, RefillState
    from workflows.steps import Notices, db, local


def refill_workflow_id(prescription_id: str) -> str:
    return f"refill-{prescription_id}"


@workflow.defn(name="RefillReminder")
class RefillReminderWorkflow:
    @workflow.init
    def __init__(self, refill: RefillInput) -> None:
        self._state = RefillState(prescription_id=refill.prescription_id)

    @workflow.run
    async def run(self, refill: RefillInput) -> RefillState:
        notices = Notices()
        plan: RefillPlan = await db(AftercareActivities.plan_refill, refill)
        self._state.remind_at = plan.remind_at
        if plan.remind_at is None:
            return self._state
        wait = plan.remind_at - workflow.now()
        if wait.total_seconds() > 0:
            await workflow.sleep(wait)
        skipped: str | None = await db(AftercareActivities.refill_skipped, refill.prescription_id)
        if skipped is not None:
            self._state.skipped = skipped
            return self._state
        notices.send(
            "refill",
            f"patient:{refill.patient_id}",
            "refill_reminder",
            prescription_id=refill.prescription_id,
            ends=local(plan.course_ends_at, "%m月%d日"),
            doctor=plan.doctor_name,
            disease=plan.disease_name,
        )
        await notices.flush()
        self._state.reminded = True
        return self._state

    @workflow.query
    def state(self) -> RefillState:
        return self._state

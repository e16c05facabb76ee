"""InstitutionRegistration (8.5.4): the hospital's registration with the provincial supervision platform.

  submitted ─platform approves→ approved (then verified through the platform's look-up)
      └─platform rejects, or refuses the filing outright→ rejected
The platform's reviewers decide in their own time, so the flow asks again every `poll_every_s` until they have; the
admins are told the outcome. A corrected filing is submitted again as a new run under the same id.

InstitutionReverification (8.5.4.4): look approved institutions up on the platform again, when an admin asks
(`institution-reverify-{id}-{request}`) and every day from a Schedule (every approved institution).
  approved ─platform no longer confirms it→ suspended (no new bookings; the admins are told)
  suspended ─an admin's look-up the platform confirms→ approved (the admins are told)
Each look-up is recorded with who asked, when and what the platform answered.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.institutions import InstitutionActivities
    from models.institution import (
        InstitutionInput,
        InstitutionState,
        InstitutionStatus,
        RegistrationReceipt,
        RegistrationState,
        RegistrationStatus,
        ReverificationCheck,
        ReverificationInput,
        ReverificationResult,
        Verification,
    )
    from workflows.steps import Notices, call, db, refusal

REVERIFY_SCHEDULE_ID = "institution-reverification"
# The notice the admins get when a look-up changes an institution's status.
_STATUS_NOTICES = {
    (InstitutionStatus.APPROVED, InstitutionStatus.SUSPENDED): "institution_suspended",
    (InstitutionStatus.SUSPENDED, InstitutionStatus.APPROVED): "institution_reinstated",
}


def institution_workflow_id(institution_id: str) -> str:
    return f"institution-{institution_id}"


def reverification_workflow_id(institution_id: str, request: str) -> str:
    """One flow per admin request: a look-up asked for after another one (say, once the licence was put right)
    never joins the earlier one, which may have looked up already."""
    return f"institution-reverify-{institution_id}-{request}"


@workflow.defn(name="InstitutionRegistration")
class InstitutionRegistrationWorkflow:
    @workflow.init
    def __init__(self, run: InstitutionInput) -> None:
        self._state = InstitutionState(
            institution_id=run.institution_id, attempt=run.attempt, status=InstitutionStatus.SUBMITTED
        )

    @workflow.run
    async def run(self, run: InstitutionInput) -> InstitutionState:
        try:
            receipt: RegistrationReceipt = await call(InstitutionActivities.submit_institution, run)
        except ActivityError as failure:
            refused = refusal(failure, "FILING_REFUSED", "监管平台拒绝受理")
            self._state.status, self._state.reason = InstitutionStatus.REJECTED, refused.message
            return await self._finish(run)
        self._state.platform_ref = receipt.platform_ref
        await db(InstitutionActivities.record_institution, self._state)

        poll = 0
        while True:
            status: RegistrationStatus = await call(
                InstitutionActivities.registration_status, run, receipt.platform_ref, poll
            )
            if status.state is not RegistrationState.PENDING:
                break
            poll += 1
            await workflow.sleep(timedelta(seconds=run.poll_every_s))
        if status.state is RegistrationState.APPROVED:
            self._state.status = InstitutionStatus.APPROVED
            self._state.verification = await call(InstitutionActivities.verify_institution, run)
        else:
            self._state.status, self._state.reason = InstitutionStatus.REJECTED, status.reason
        return await self._finish(run)

    async def _finish(self, run: InstitutionInput) -> InstitutionState:
        await db(InstitutionActivities.record_institution, self._state)
        approved = self._state.status is InstitutionStatus.APPROVED
        verification = self._state.verification
        notices = Notices()
        notices.send(
            f"result-{run.attempt}",
            "role:admin",
            "institution_registered",
            institution=run.institution_id,
            ref=self._state.platform_ref or "-",
            result="已获批准" if approved else "未通过",
            detail=(verification.detail if verification is not None else "") if approved else self._state.reason or "",
        )
        await notices.flush()
        return self._state

    @workflow.query
    def state(self) -> InstitutionState:
        return self._state


@workflow.defn(name="InstitutionReverification")
class InstitutionReverificationWorkflow:
    @workflow.run
    async def run(self, run: ReverificationInput) -> list[ReverificationResult]:
        ids: list[str] = (
            run.institution_ids
            if run.institution_ids is not None
            else await db(InstitutionActivities.approved_institutions)
        )
        notices = Notices()
        results = []
        for institution_id in ids:
            check = ReverificationCheck(
                check_id=f"{workflow.info().run_id}:{institution_id}",
                institution_id=institution_id,
                requested_by=run.requested_by,
            )
            verification: Verification = await call(InstitutionActivities.reverify_institution, check)
            result: ReverificationResult = await db(InstitutionActivities.record_reverification, check, verification)
            template = _STATUS_NOTICES.get((result.status_before, result.status_after))
            if template is not None:
                notices.send(
                    f"{check.check_id}:{result.status_after}",
                    "role:admin",
                    template,
                    name=result.name,
                    code=result.code,
                    detail=verification.detail,
                )
            results.append(result)
        await notices.flush()
        return results


def reverification_schedule(task_queue: str, every: timedelta) -> Schedule:
    """The Schedule to create (or update) under REVERIFY_SCHEDULE_ID; its runs use the workflow id
    `institution-reverification-<time>` and look up every approved institution."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            InstitutionReverificationWorkflow.run,
            ReverificationInput(),
            id=REVERIFY_SCHEDULE_ID,
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note="向监管平台重新核验已获批准的机构（执业许可被吊销或过期的机构将暂停诊疗服务）"),
    )

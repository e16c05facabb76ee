"""InstitutionRegistration (8.5.4): the hospital's registration with the provincial supervision platform.

  submitted ─platform approves→ approved (then verified through the platform's look-up)
      └─platform rejects, or refuses the filing outright→ rejected
The platform's reviewers decide in their own time, so the flow asks again every `poll_every_s` until they have; the
admins are told the outcome. A corrected filing is submitted again as a new run under the same id.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
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
    )
    from workflows.steps import Notices, call, db, refusal


def institution_workflow_id(institution_id: str) -> str:
    return f"institution-{institution_id}"


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

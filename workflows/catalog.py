"""CatalogChange (8.6.2.3): a change to the drug catalogue waits for a senior pharmacist's review before it is
published.

  pending ─`decide` approve (another pharmacist)→ published (applied to the catalogue, the entry before kept)
  pending ─`decide` reject→ rejected
The pharmacists who may approve hear of the proposal; the proposer hears of the decision.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.catalog import CatalogActivities
    from models.catalog import KIND_NAMES, CatalogChangeInput, CatalogChangeState, CatalogDecision, ChangeStatus
    from workflows.steps import Notices, db, refusal

APPROVERS = "role:pharmacist/catalog.approve"


def catalog_workflow_id(change_id: str) -> str:
    return f"catalog-{change_id}"


@workflow.defn(name="CatalogChange")
class CatalogChangeWorkflow:
    @workflow.init
    def __init__(self, run: CatalogChangeInput) -> None:
        self._run = run
        self._state = CatalogChangeState()
        self._notices = Notices()
        # Set while a decision is being carried out, so a second one arriving meanwhile is refused, not run too.
        self._deciding = False

    @workflow.run
    async def run(self, run: CatalogChangeInput) -> CatalogChangeState:
        self._notices.send(
            "proposed", APPROVERS, "catalog_change_proposed", change_id=run.change_id, kind=KIND_NAMES[run.kind],
            herb=run.herb_name, summary=run.summary,
        )  # fmt: skip
        await workflow.wait_condition(lambda: self._state.status is not ChangeStatus.PENDING)
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._notices.send(
            "decided", f"pharmacist:{run.proposer_id}", "catalog_change_decided", change_id=run.change_id,
            kind=KIND_NAMES[run.kind], herb=run.herb_name,
            result="已审核发布" if self._state.status is ChangeStatus.PUBLISHED else "未通过审核",
            note=self._state.note or "",
        )  # fmt: skip
        await self._notices.flush()
        return self._state

    @workflow.update
    async def decide(self, decision: CatalogDecision) -> CatalogChangeState:
        self._deciding = True
        if decision.approve:
            try:
                await db(CatalogActivities.publish_change, self._run.change_id, decision)
            except (ActivityError, ApplicationError) as failure:
                # The catalogue moved meanwhile (the code taken, the entry added): stays pending for a rejection.
                self._deciding = False
                raise refusal(failure, "CATALOG_CONFLICT", "药品目录已变化，无法发布") from None
        else:
            await db(CatalogActivities.reject_change, self._run.change_id, decision)
        self._state = CatalogChangeState(
            status=ChangeStatus.PUBLISHED if decision.approve else ChangeStatus.REJECTED,
            decided_by=decision.approver_user_id,
            note=decision.note or None,
        )
        return self._state

    @decide.validator
    def _check_decide(self, decision: CatalogDecision) -> None:
        if self._deciding or self._state.status is not ChangeStatus.PENDING:
            raise ApplicationError("该变更已审核", type="CHANGE_DECIDED", non_retryable=True)
        if decision.approver_user_id == self._run.proposer_user_id:
            raise ApplicationError("药品目录变更须由提交人以外的药师审核", type="SAME_PHARMACIST", non_retryable=True)

    @workflow.query
    def state(self) -> CatalogChangeState:
        return self._state

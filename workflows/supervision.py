"""SupervisionUpload (8.6.6): one kind of record, one Beijing day, to the provincial supervision platform.

  batches of the day's changed records (after the last id examined) ─send what the platform lacks→ … → totals
A day can be uploaded again at any time (`supervise-{kind}-{day}` once the previous run ended): only records that
changed since are sent, unless an operator asks to resend all. When the platform rejected any record, the admins are
told how many and where to look.

DailySupervisionUpload: started by the Schedule, uploads yesterday (its late changes) and today so far, each kind
under its business id; a day already being uploaded is left to that run.
"""

from __future__ import annotations

from datetime import date, timedelta

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
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.supervision import SupervisionActivities
    from models.common import HOSPITAL_TZ
    from models.supervision import (
        KIND_NAMES,
        BatchResult,
        DailySupervisionInput,
        SupervisionUploadInput,
        SupervisionUploadResult,
        UploadBatch,
        UploadTotals,
    )
    from workflows.steps import Notices, call

SCHEDULE_ID = "supervision-upload"


def supervision_workflow_id(kind: str, day: date) -> str:
    return f"supervise-{kind}-{day:%Y%m%d}"


@workflow.defn(name="SupervisionUpload")
class SupervisionUploadWorkflow:
    @workflow.init
    def __init__(self, run: SupervisionUploadInput) -> None:
        self._totals = run.totals or UploadTotals()
        self._after = run.after

    @workflow.run
    async def run(self, run: SupervisionUploadInput) -> SupervisionUploadResult:
        while True:
            batch = UploadBatch(kind=run.kind, day=run.day, after=self._after, size=run.batch_size, resend=run.resend)
            result: BatchResult = await call(SupervisionActivities.upload_batch, batch)
            self._totals = self._totals.add(result.totals)
            self._after = result.after
            if self._after is None:
                break
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(run.model_copy(update={"after": self._after, "totals": self._totals}))
        if self._totals.rejected:
            notices = Notices()
            info = workflow.info()
            # Every run of the day has this workflow id; each run that met rejections tells the admins of its own.
            notices.send_once(
                f"{info.workflow_id}:{info.first_execution_run_id}:rejected",
                "role:admin",
                "supervision_rejected",
                kind=KIND_NAMES[run.kind],
                day=f"{run.day:%Y-%m-%d}",
                rejected=str(self._totals.rejected),
                accepted=str(self._totals.accepted),
            )
            await notices.flush()
        return SupervisionUploadResult(kind=run.kind, day=run.day, totals=self._totals, finished_at=workflow.now())

    @workflow.query
    def progress(self) -> UploadTotals:
        return self._totals


@workflow.defn(name="DailySupervisionUpload")
class DailySupervisionUploadWorkflow:
    @workflow.run
    async def run(self, request: DailySupervisionInput) -> list[str]:
        today = workflow.now().astimezone(HOSPITAL_TZ).date()
        started = []
        for day in (today - timedelta(days=1), today):
            for kind in request.kinds:
                child_id = supervision_workflow_id(kind, day)
                try:
                    await workflow.start_child_workflow(
                        SupervisionUploadWorkflow.run,
                        SupervisionUploadInput(kind=kind, day=day),
                        id=child_id,
                        parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                    )
                    started.append(child_id)
                except WorkflowAlreadyStartedError:
                    workflow.logger.info("the day's upload is under way", extra={"child": child_id})
        return started


def supervision_schedule(task_queue: str, every: timedelta) -> Schedule:
    """The Schedule to create (or update) under SCHEDULE_ID: every `every`, yesterday's and today's records."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DailySupervisionUploadWorkflow.run, DailySupervisionInput(), id=SCHEDULE_ID, task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note="向省级监管平台上传在线复诊记录与电子处方流转信息（前一日及当日，北京时间）"),
    )

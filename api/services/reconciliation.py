"""Finance's side of reconciliation: resolving a difference and re-running a day go to the day's workflow."""

from __future__ import annotations

from datetime import date

from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.auth import Actor
from api.errors import Problem
from api.hospital_time import hospital_today
from api.services.temporal_calls import workflow_call
from core.reconciliation import Target, reconciliation_targets
from core.settings import Settings
from models.reconciliation import (
    ReconcileInput,
    ReconciliationState,
    RerunRequest,
    Resolution,
    ResolutionResult,
    ResolveItem,
)
from workflows.reconciliation import CHANNEL_NAMES, ReconciliationWorkflow, reconciliation_workflow_id


def check_day(settings: Settings, channel: str, bill_date: date, campus: str | None = None) -> None:
    targets = reconciliation_targets(settings)
    channels = list(dict.fromkeys(target.channel for target in targets))
    if channel not in channels:
        known = "、".join(f"{name}（{CHANNEL_NAMES.get(name, name)}）" for name in channels)
        raise Problem(422, "UNKNOWN_CHANNEL", "对账渠道无效", f"可对账的渠道为：{known}")
    if Target(channel, campus) not in targets:
        campuses = [target.campus for target in targets if target.channel == channel and target.campus]
        detail = (
            f"{CHANNEL_NAMES.get(channel, channel)}按院区对账，请指定院区：{'、'.join(campuses)}"
            if campuses
            else f"{CHANNEL_NAMES.get(channel, channel)}全院统一对账，无需指定院区"
        )
        raise Problem(422, "UNKNOWN_CAMPUS", "对账院区无效", detail)
    if bill_date >= hospital_today():
        raise Problem(409, "DAY_NOT_OVER", "该日尚未结束", "只能对已经结束的日期（北京时间）对账")


async def resolve_item(
    client: Client,
    channel: str,
    bill_date: date,
    campus: str | None,
    item_id: int,
    resolution: Resolution,
    note: str,
    actor: Actor,
    update_id: str | None,
) -> ResolutionResult:
    handle = client.get_workflow_handle(reconciliation_workflow_id(channel, bill_date, campus))
    request = ResolveItem(item_id=item_id, resolution=resolution, note=note, resolved_by=actor.user_id)
    return await workflow_call(
        handle.execute_update(ReconciliationWorkflow.resolve, request, id=update_id), missing="该日对账流程不存在"
    )


async def rerun_day(
    client: Client, settings: Settings, channel: str, bill_date: date, campus: str | None, actor: Actor
) -> tuple[bool, ReconciliationState | None]:
    """Start the day's reconciliation (of the campus), or ask the running one to download and match again.

    Returns whether a new execution started, and (for a running one) its state.
    """
    workflow_id = reconciliation_workflow_id(channel, bill_date, campus)
    campus_name = settings.campuses[campus].name if campus in settings.campuses else None
    try:
        await client.start_workflow(
            ReconciliationWorkflow.run,
            ReconcileInput(channel=channel, bill_date=bill_date, campus=campus, campus_name=campus_name),
            id=workflow_id,
            task_queue=settings.task_queue,
        )
        return True, None
    except WorkflowAlreadyStartedError:
        handle = client.get_workflow_handle(workflow_id)
        state = await workflow_call(
            handle.execute_update(ReconciliationWorkflow.rerun, RerunRequest(requested_by=actor.user_id))
        )
        return False, state


async def day_progress(client: Client, channel: str, bill_date: date, campus: str | None) -> ReconciliationState:
    handle = client.get_workflow_handle(reconciliation_workflow_id(channel, bill_date, campus))
    return await workflow_call(handle.query(ReconciliationWorkflow.progress), missing="该日没有对账流程")

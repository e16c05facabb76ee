"""Leave and substitution (停诊/替诊): the ScheduleChange flow and the Visits it reaches, with fake activities."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WithStartWorkflowOperation, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy

from api.services.schedule_changes import start_change
from core.settings import Settings
from models.schedule_change import (
    AffectedVisit,
    ChangeKind,
    ChangeStatus,
    ScheduleChangeInput,
    ScheduleChangeState,
    VisitOutcome,
)
from models.visit import AcceptVisit, CancelVisit, LeaveChoice, ResolveLeave, SlotMove, VisitInput, VisitStage
from tests.workflows.conftest import Harness
from tests.workflows.test_visit import book, pay, visit_input, wait_stage
from workflows.schedule_change import ScheduleChangeWorkflow, schedule_change_workflow_id
from workflows.visit import VisitWorkflow


def patient_visit(patient_id: str, **kwargs) -> VisitInput:
    visit = visit_input(**kwargs)
    return visit.model_copy(update={"patient_id": patient_id, "slot_id": f"slot-{uuid.uuid4().hex[:6]}"})


async def booked(h: Harness, visit: VisitInput, *, paid: bool = True) -> WorkflowHandle:
    _, handle = await book(h, visit, patient_id=visit.patient_id)
    if paid:
        await pay(h, visit)
        await wait_stage(handle, VisitStage.WAITING_DOCTOR)
    return handle


def change_input(kind: ChangeKind, window_s: int = 600) -> ScheduleChangeInput:
    return ScheduleChangeInput(
        change_id=f"chg-{uuid.uuid4().hex[:8]}",
        schedule_id="sch-1",
        kind=kind,
        doctor_id="doc-1",
        doctor_name="李明远",
        starts_at=datetime.now(UTC) + timedelta(hours=1),
        substitute_doctor_id="doc-2" if kind is ChangeKind.SUBSTITUTION else None,
        substitute_name="王清和" if kind is ChangeKind.SUBSTITUTION else None,
        reason="临时外出会诊",
        requested_by="u-admin",
        choice_window_s=window_s,
    )


async def change_schedule(
    h: Harness, kind: ChangeKind, visits: list[VisitInput], *, window_s: int = 600
) -> tuple[ScheduleChangeState, WorkflowHandle]:
    h.world.affected = [AffectedVisit(visit_id=v.visit_id, slot_id=v.slot_id, patient_id=v.patient_id) for v in visits]
    change = change_input(kind, window_s)
    start = WithStartWorkflowOperation(
        ScheduleChangeWorkflow.run,
        change,
        id=schedule_change_workflow_id(change.change_id),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=h.queue,
    )
    state = await h.client.execute_update_with_start_workflow(
        ScheduleChangeWorkflow.begin, start_workflow_operation=start
    )
    return state, await start.workflow_handle()


async def offered(handle: WorkflowHandle) -> None:
    for _ in range(100):
        if (await handle.query(VisitWorkflow.state)).leave_offer is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the visit never got the leave offer")


def templates_for(h: Harness, user_ref: str) -> list[str]:
    return [n.template for n in h.world.notices if n.user_ref == user_ref]


async def test_substitution_hands_paid_and_unpaid_visits_to_the_substitute(harness: Harness) -> None:
    paid, unpaid = patient_visit("pat-1"), patient_visit("pat-2", pay_window_s=600)
    paid_handle = await booked(harness, paid)
    unpaid_handle = await booked(harness, unpaid, paid=False)

    state, change = await change_schedule(harness, ChangeKind.SUBSTITUTION, [paid, unpaid])
    assert state.status is ChangeStatus.IN_PROGRESS and len(state.visits) == 2
    final = await change.result()
    assert final.status is ChangeStatus.DONE
    assert {v.outcome for v in final.visits} == {VisitOutcome.SUBSTITUTED}

    now = await paid_handle.query(VisitWorkflow.state)
    assert now.doctor_id == "doc-2" and now.his_registration_no == f"HIS-{paid.visit_id}-1"
    assert harness.world.calls["cancel_his_registration"] == 1
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await paid_handle.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id="doc-1"))
    assert refused.value.cause.type == "FORBIDDEN"
    accepted = await paid_handle.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id="doc-2"))
    assert accepted.stage is VisitStage.IN_CONSULT

    # The unpaid booking registers with HIS under the substitute once paid.
    await pay(harness, unpaid)
    await wait_stage(unpaid_handle, VisitStage.WAITING_DOCTOR)
    assert harness.world.his_registrations[-1].doctor_id == "doc-2"

    assert templates_for(harness, "patient:pat-1").count("visit_substituted") == 1
    assert templates_for(harness, "patient:pat-2").count("visit_substituted") == 1
    assert templates_for(harness, "doctor:doc-1").count("visit_handed_over") == 2
    assert "schedule_change_done" in templates_for(harness, "doctor:doc-1")
    assert {"schedule_substitute", "visit_assigned"} <= set(templates_for(harness, "doctor:doc-2"))
    for handle in (paid_handle, unpaid_handle):
        await handle.terminate("test done")


async def test_leave_then_the_patient_chooses_a_full_refund(harness: Harness) -> None:
    visit = patient_visit("pat-1")
    handle = await booked(harness, visit)
    _, change = await change_schedule(harness, ChangeKind.LEAVE, [visit])
    await offered(handle)

    state = await handle.query(VisitWorkflow.state)
    assert state.leave_offer is not None and state.leave_offer.refund_fen == visit.fee_fen
    with pytest.raises(WorkflowUpdateFailedError) as pending:
        await handle.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id="doc-1"))
    assert pending.value.cause.type == "LEAVE_DECISION_PENDING"
    with pytest.raises(WorkflowUpdateFailedError) as stranger:
        await handle.execute_update(
            VisitWorkflow.resolve_leave, ResolveLeave(patient_id="pat-9", choice=LeaveChoice.REFUND)
        )
    assert stranger.value.cause.type == "FORBIDDEN"

    ended = await handle.execute_update(
        VisitWorkflow.resolve_leave, ResolveLeave(patient_id="pat-1", choice=LeaveChoice.REFUND)
    )
    assert ended.stage is VisitStage.CANCELLED and ended.leave_offer is None
    [refund] = harness.world.refunds
    assert refund.amount_fen == visit.fee_fen and refund.requested_by == "pat-1"
    assert harness.world.calls["release_slot"] == 1 and harness.world.calls["cancel_his_registration"] == 1
    final = await change.result()
    assert [(v.visit_id, v.outcome) for v in final.visits] == [(visit.visit_id, VisitOutcome.REFUNDED)]
    assert {"visit_leave_offer", "visit_leave_refunded"} <= set(templates_for(harness, "patient:pat-1"))


async def test_leave_then_the_patient_rebooks_a_cheaper_slot_and_gets_the_difference(harness: Harness) -> None:
    visit = patient_visit("pat-1")  # 30.00 yuan
    handle = await booked(harness, visit)
    _, change = await change_schedule(harness, ChangeKind.LEAVE, [visit])
    await offered(handle)

    new_start = datetime.now(UTC) + timedelta(days=1)
    harness.world.rebook_to = SlotMove(
        slot_id="slot-new",
        doctor_id="doc-2",
        doctor_name="王清和",
        starts_at=new_start,
        ends_at=new_start + timedelta(minutes=15),
        fee_fen=2000,
    )
    harness.world.rebook_refusal = ("REBOOK_FEE_HIGHER", "该号源挂号费高于已付挂号费")
    choice = ResolveLeave(patient_id="pat-1", choice=LeaveChoice.REBOOK, slot_id="slot-dear")
    with pytest.raises(WorkflowUpdateFailedError) as dearer:
        await handle.execute_update(VisitWorkflow.resolve_leave, choice)
    assert dearer.value.cause.type == "REBOOK_FEE_HIGHER"
    assert (await handle.query(VisitWorkflow.state)).leave_offer is not None  # still free to choose

    moved = await handle.execute_update(VisitWorkflow.resolve_leave, choice.model_copy(update={"slot_id": "slot-new"}))
    assert (moved.slot_id, moved.doctor_id, moved.fee_fen) == ("slot-new", "doc-2", 2000)
    assert moved.stage is VisitStage.WAITING_DOCTOR and moved.leave_offer is None
    [move] = harness.world.moves
    assert move.from_slot_id == visit.slot_id and move.max_fee_fen == visit.fee_fen
    [difference] = harness.world.refunds
    assert difference.amount_fen == 1000
    final = await change.result()
    assert [(v.outcome, v.detail) for v in final.visits] == [(VisitOutcome.REBOOKED, "slot-new")]
    assert harness.world.his_registrations[-1].doctor_id == "doc-2"
    assert "visit_rebooked" in templates_for(harness, "patient:pat-1")
    assert "visit_assigned" in templates_for(harness, "doctor:doc-2")

    # The visit goes on with the new doctor; a later cancel refunds what is left of the fee, and no more.
    await handle.execute_update(VisitWorkflow.cancel, CancelVisit(patient_id="pat-1", reason="另有安排"))
    await handle.result()
    assert "visit_cancelled" in templates_for(harness, "patient:pat-1")
    assert [r.amount_fen for r in harness.world.refunds] == [1000, 2000]
    assert [r.refund_id for r in harness.world.refunds] == [f"{visit.visit_id}-reg-r1", f"{visit.visit_id}-reg-r2"]


async def test_leave_refunds_in_full_by_itself_when_the_patient_does_not_choose(harness: Harness) -> None:
    visit = patient_visit("pat-1")
    handle = await booked(harness, visit)
    _, change = await change_schedule(harness, ChangeKind.LEAVE, [visit], window_s=1)
    final_visit = await handle.result()
    assert final_visit.stage is VisitStage.CANCELLED
    [refund] = harness.world.refunds
    assert refund.amount_fen == visit.fee_fen and refund.requested_by == "system"
    final = await change.result()
    assert final.visits[0].outcome is VisitOutcome.REFUNDED
    [notice] = [n for n in harness.world.notices if n.template == "visit_leave_refunded"]
    assert "自动退款" in notice.params["how"]


async def test_leave_cancels_unpaid_bookings_and_skips_visits_that_already_ended(harness: Harness) -> None:
    unpaid = patient_visit("pat-1", pay_window_s=600)
    handle = await booked(harness, unpaid, paid=False)
    gone = patient_visit("pat-2")  # its slot was held, but no Visit flow runs for it any more
    _, change = await change_schedule(harness, ChangeKind.LEAVE, [unpaid, gone])
    assert (await handle.result()).stage is VisitStage.CANCELLED
    assert harness.world.calls["close_channel_order"] == 1 and harness.world.calls["release_slot"] == 1
    assert harness.world.refunds == []
    final = await change.result()
    assert {v.visit_id: v.outcome for v in final.visits} == {
        unpaid.visit_id: VisitOutcome.CANCELLED,
        gone.visit_id: VisitOutcome.NOT_AFFECTED,
    }
    assert "visit_cancelled" in templates_for(harness, "patient:pat-1")


async def test_a_schedule_changed_already_is_refused_at_once(harness: Harness) -> None:
    harness.world.change_refusal = ("SCHEDULE_ALREADY_CHANGED", "该排班已停诊或已替诊，不能再次调整")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await change_schedule(harness, ChangeKind.LEAVE, [])
    assert refused.value.cause.type == "SCHEDULE_ALREADY_CHANGED"


async def test_a_retried_request_for_a_finished_change_gets_its_state_without_running_it_again(
    harness: Harness,
) -> None:
    settings = Settings(task_queue=harness.queue)  # type: ignore[call-arg]
    change = change_input(ChangeKind.LEAVE)  # no visits on the schedule: done at once
    first = await start_change(harness.client, settings, change)
    assert first.status is ChangeStatus.IN_PROGRESS
    await harness.client.get_workflow_handle(schedule_change_workflow_id(change.change_id)).result()
    again = await start_change(harness.client, settings, change)
    assert again.status is ChangeStatus.DONE
    assert harness.world.calls["record_change"] == 1

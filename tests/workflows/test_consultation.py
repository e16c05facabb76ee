"""The doctor's day in the Visit flow: abort advice kept, consultants (会诊) invited, their signed opinions and
prescriptions, and no prescription for a child under six before the guardian is recorded (fake activities)."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from models.consultation import MAX_CONSULTANTS, GiveOpinion, InviteConsultant
from models.notify import Notice
from models.record import SignRecord
from models.visit import AbortVisit, AcceptVisit, FinishVisit, Prescribe, VisitStage, WriteRecord
from tests.workflows.conftest import Harness
from tests.workflows.test_prescription import DRAFT, until
from tests.workflows.test_visit import RECORD, book, pay, visit_input, wait_stage
from workflows.prescription import PrescriptionWorkflow, prescription_workflow_id
from workflows.visit import VisitWorkflow


async def in_consult(h: Harness) -> WorkflowHandle:
    visit = visit_input()
    _, handle = await book(h, visit)
    await pay(h, visit)
    await wait_stage(handle, VisitStage.WAITING_DOCTOR)
    await handle.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id="doc-1"))
    return handle


async def refused(update) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await update
    return failure.value.cause.type  # type: ignore[union-attr]


async def noticed(h: Harness, template: str) -> list[Notice]:
    """Notices go out beside the flow: wait until one of `template` was sent."""

    async def sent() -> bool:
        return any(n.template == template for n in h.world.notices)

    await until(sent)
    return [n for n in h.world.notices if n.template == template]


def invite(consultant: str = "doc-2", by: str = "doc-1") -> InviteConsultant:
    return InviteConsultant(doctor_id=by, consultant_id=consultant, reason="舌脉与症状不符，请心血管科会诊")


async def test_an_invited_doctor_gives_a_signed_opinion_and_prescribes(harness: Harness) -> None:
    handle = await in_consult(harness)
    state = await handle.execute_update(VisitWorkflow.invite_consultant, invite())
    assert state.consultants == ["doc-2"]
    [notice] = await noticed(harness, "consult_invited")
    assert notice.user_ref == "doctor:doc-2" and "心血管科会诊" in notice.params["reason"]

    opinion = GiveOpinion(doctor_id="doc-2", opinion="证属心脾两虚，建议加用归脾汤化裁。")
    given = await handle.execute_update(VisitWorkflow.give_opinion, opinion)
    assert given.opinions == ["doc-2"] and harness.world.opinions == [opinion]
    assert {n.user_ref for n in await noticed(harness, "consult_opinion")} == {"doctor:doc-1"}
    # Signed, the opinion is locked.
    assert await refused(handle.execute_update(VisitWorkflow.give_opinion, opinion)) == "OPINION_SIGNED"

    rx_id = f"{handle.id}-rx-consultant"
    await handle.execute_update(
        VisitWorkflow.prescribe, Prescribe(doctor_id="doc-2", prescription_id=rx_id, draft=DRAFT)
    )
    # The consultant's prescription is theirs: they sign it in its own flow.
    rx = harness.client.get_workflow_handle(prescription_workflow_id(rx_id))
    assert (await rx.query(PrescriptionWorkflow.state)).prescription_id == rx_id
    assert [s.prescription_id for s in harness.world.rx_states][:1] == [rx_id]
    assert harness.world.calls["require_guardian"] == 1

    # Only the visit's own doctor writes the record and finishes; the consultant is refused.
    assert (
        await refused(handle.execute_update(VisitWorkflow.write_record, WriteRecord(doctor_id="doc-2", record=RECORD)))
        == "FORBIDDEN"
    )
    assert await refused(handle.execute_update(VisitWorkflow.finish, FinishVisit(doctor_id="doc-2"))) == "FORBIDDEN"
    await handle.execute_update(VisitWorkflow.write_record, WriteRecord(doctor_id="doc-1", record=RECORD))
    await handle.execute_update(VisitWorkflow.sign_record, SignRecord(doctor_id="doc-1"))
    await handle.execute_update(VisitWorkflow.finish, FinishVisit(doctor_id="doc-1"))
    final = await handle.result()
    assert final.stage is VisitStage.FINISHED and final.prescription_ids == [rx_id]
    await rx.terminate("test done")


async def test_invitations_are_the_visit_doctors_and_checked(harness: Harness) -> None:
    handle = await in_consult(harness)
    assert await refused(handle.execute_update(VisitWorkflow.invite_consultant, invite(by="doc-2"))) == "FORBIDDEN"
    assert await refused(handle.execute_update(VisitWorkflow.invite_consultant, invite("doc-1"))) == (
        "CONSULTANT_IS_ATTENDING"
    )
    # An uninvited doctor neither gives an opinion nor prescribes.
    opinion = GiveOpinion(doctor_id="doc-3", opinion="同意")
    assert await refused(handle.execute_update(VisitWorkflow.give_opinion, opinion)) == "FORBIDDEN"
    prescribe = Prescribe(doctor_id="doc-3", prescription_id="x-rx", draft=DRAFT)
    assert await refused(handle.execute_update(VisitWorkflow.prescribe, prescribe)) == "FORBIDDEN"

    # The step refuses a doctor who does not practise: nothing is recorded in the flow.
    harness.world.invite_refusal = ("CONSULTANT_INACTIVE", "受邀医生已停诊或离职，不能邀请会诊")
    assert await refused(handle.execute_update(VisitWorkflow.invite_consultant, invite("doc-9"))) == (
        "CONSULTANT_INACTIVE"
    )
    assert (await handle.query(VisitWorkflow.state)).consultants == []
    harness.world.invite_refusal = None

    for n in range(MAX_CONSULTANTS):
        await handle.execute_update(VisitWorkflow.invite_consultant, invite(f"doc-c{n}"))
    assert await refused(handle.execute_update(VisitWorkflow.invite_consultant, invite("doc-c0"))) == "ALREADY_INVITED"
    assert await refused(handle.execute_update(VisitWorkflow.invite_consultant, invite("doc-cx"))) == (
        "TOO_MANY_CONSULTANTS"
    )
    await handle.terminate("test done")


async def test_no_invitation_before_the_doctor_accepts(harness: Harness) -> None:
    visit = visit_input()
    _, handle = await book(harness, visit)
    await pay(harness, visit)
    await wait_stage(handle, VisitStage.WAITING_DOCTOR)
    assert await refused(handle.execute_update(VisitWorkflow.invite_consultant, invite())) == "VISIT_NOT_IN_CONSULT"
    await handle.terminate("test done")


async def test_a_child_under_six_gets_no_prescription_until_the_guardian_is_recorded(harness: Harness) -> None:
    handle = await in_consult(harness)
    harness.world.guardian_missing = True
    rx_id = f"{handle.id}-rx1"
    prescribe = Prescribe(doctor_id="doc-1", prescription_id=rx_id, draft=DRAFT)
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(VisitWorkflow.prescribe, prescribe)
    cause = failure.value.cause
    assert cause.type == "GUARDIAN_REQUIRED" and "监护人" in cause.message  # type: ignore[union-attr]
    state = await handle.query(VisitWorkflow.state)
    assert state.prescription_ids == [] and harness.world.rx_states == []

    harness.world.guardian_missing = False  # the doctor recorded the guardian and the accompanying physician
    assert await handle.execute_update(VisitWorkflow.prescribe, prescribe) == rx_id
    await harness.client.get_workflow_handle(prescription_workflow_id(rx_id)).terminate("test done")
    await handle.terminate("test done")


async def test_abort_keeps_the_reason_and_the_advice(harness: Harness) -> None:
    handle = await in_consult(harness)
    await handle.execute_update(
        VisitWorkflow.abort, AbortVisit(doctor_id="doc-1", reason="需面诊触诊", advice="请一周内到脾胃病科门诊就诊。")
    )
    final = await handle.result()
    assert (final.stage, final.abort_reason, final.abort_advice) == (
        VisitStage.ABORTED,
        "需面诊触诊",
        "请一周内到脾胃病科门诊就诊。",
    )
    assert harness.world.visit_states[-1].abort_advice == "请一周内到脾胃病科门诊就诊。"
    [aborted] = await noticed(harness, "visit_aborted")
    assert aborted.params["advice"] == "请一周内到脾胃病科门诊就诊。"

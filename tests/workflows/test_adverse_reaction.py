"""The adverse reaction report flow with fake activities: who is told, the pharmacist's answer, the escalation when
nobody answers in time."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from models.aftercare import (
    AdverseReactionInput,
    AdverseReactionResponse,
    ReactionAction,
    ReactionSeverity,
    ReactionStage,
)
from models.duty import ON_DUTY_PHARMACISTS
from tests.workflows.conftest import Harness
from tests.workflows.test_prescription import until
from workflows.adverse_reaction import AdverseReactionWorkflow, adverse_reaction_workflow_id


async def report(
    h: Harness, severity: ReactionSeverity = ReactionSeverity.MILD, sla_s: int = 600, pharmacist: str | None = "ph-2"
) -> WorkflowHandle:
    report_id = f"rx-1-adr{uuid.uuid4().hex[:6]}"
    return await h.client.start_workflow(
        AdverseReactionWorkflow.run,
        AdverseReactionInput(
            report_id=report_id,
            prescription_id="rx-1",
            patient_id="pat-1",
            doctor_id="doc-1",
            dispensing_pharmacist_id=pharmacist,
            severity=severity,
            symptoms="服药后胃部不适，轻微恶心",
            response_sla_s=sla_s,
        ),
        id=adverse_reaction_workflow_id(report_id),
        task_queue=h.queue,
    )


def sent(h: Harness, template: str) -> set[str]:
    """Who got `template` (notices go out side by side, so in no particular order)."""
    return {n.user_ref for n in h.world.notices if n.template == template}


async def test_the_pharmacists_and_doctor_are_told_and_the_answer_reaches_the_patient(harness: Harness) -> None:
    handle = await report(harness)

    async def recorded() -> bool:
        return bool(harness.world.reactions)

    await until(recorded)
    with pytest.raises(WorkflowUpdateFailedError) as blank:
        await handle.execute_update(
            AdverseReactionWorkflow.respond,
            AdverseReactionResponse(pharmacist_id="ph-2", action=ReactionAction.STOP, advice="  "),
        )
    assert blank.value.cause.type == "REASON_REQUIRED"

    answered = await handle.execute_update(
        AdverseReactionWorkflow.respond,
        AdverseReactionResponse(pharmacist_id="ph-2", action=ReactionAction.STOP, advice="请暂停服药，多饮温水。"),
    )
    assert answered.stage is ReactionStage.RESPONDED and answered.responded_at is not None
    with pytest.raises(WorkflowUpdateFailedError) as twice:
        await handle.execute_update(
            AdverseReactionWorkflow.respond,
            AdverseReactionResponse(pharmacist_id="ph-1", action=ReactionAction.CONTINUE, advice="继续服用"),
        )
    assert twice.value.cause.type == "ADVERSE_REACTION_ANSWERED"

    final = await handle.result()
    assert final.response is not None and final.response.pharmacist_id == "ph-2" and not final.overdue
    assert sent(harness, "adverse_reaction_reported") == {"pharmacist:ph-2", ON_DUTY_PHARMACISTS, "doctor:doc-1"}
    assert sent(harness, "adverse_reaction_received") == {"patient:pat-1"}
    [answer] = [n for n in harness.world.notices if n.template == "adverse_reaction_answered"]
    assert answer.user_ref == "patient:pat-1" and answer.params["advice"] == "请暂停服药，多饮温水。"
    assert answer.params["action"] == "请暂停服药"
    assert [s.stage for s in harness.world.reactions] == [ReactionStage.OPEN, ReactionStage.RESPONDED]
    assert not sent(harness, "adverse_reaction_overdue")


async def test_a_severe_report_reaches_the_admins_and_tells_the_patient_to_seek_care(harness: Harness) -> None:
    handle = await report(harness, ReactionSeverity.SEVERE, pharmacist=None)

    async def told() -> bool:
        return len(sent(harness, "adverse_reaction_reported")) == 3

    await until(told)
    assert sent(harness, "adverse_reaction_reported") == {ON_DUTY_PHARMACISTS, "doctor:doc-1", "role:admin"}
    assert sent(harness, "adverse_reaction_received_severe") == {"patient:pat-1"}
    await handle.terminate("test done")


async def test_an_unanswered_report_is_escalated_then_still_answered(harness: Harness) -> None:
    handle = await report(harness, sla_s=1)

    async def escalated() -> bool:
        return len(sent(harness, "adverse_reaction_overdue")) == 2

    await until(escalated, attempts=100)
    assert sent(harness, "adverse_reaction_overdue") == {"role:admin", ON_DUTY_PHARMACISTS}
    assert (await handle.query(AdverseReactionWorkflow.state)).overdue
    await handle.execute_update(
        AdverseReactionWorkflow.respond,
        AdverseReactionResponse(pharmacist_id="ph-1", action=ReactionAction.SEE_DOCTOR, advice="请到医院就诊。"),
    )
    final = await handle.result()
    assert final.overdue and final.stage is ReactionStage.RESPONDED
    assert [s.overdue for s in harness.world.reactions] == [False, True, True]

"""InstitutionRegistration against the dev server with fake activities: submit, wait for the platform's decision,
verify after approval, tell the admins; a refused filing or a rejection ends it with the reason."""

from __future__ import annotations

from temporalio.client import Client

from models.institution import InstitutionInput, InstitutionStatus, RegistrationState, RegistrationStatus
from tests.workflows.account_fakes import InstitutionWorld
from workflows.institution import InstitutionRegistrationWorkflow, institution_workflow_id


async def register(client: Client, queue: str, institution_id: str) -> InstitutionStatus:
    state = await client.execute_workflow(
        InstitutionRegistrationWorkflow.run,
        InstitutionInput(institution_id=institution_id, attempt=1, poll_every_s=1),
        id=institution_workflow_id(institution_id),
        task_queue=queue,
    )
    return state.status


async def test_pending_then_approved_and_verified(client: Client, uid: str) -> None:
    world = InstitutionWorld()
    approved = world.answers[0]
    world.answers = [RegistrationStatus(state=RegistrationState.PENDING)] * 2 + [approved]
    queue = f"wf-inst-{uid}"
    async with world.running(client, queue):
        assert await register(client, queue, f"inst-{uid}") is InstitutionStatus.APPROVED
    # Asked three times (a timer between each); the receipt is recorded before waiting, the outcome at the end.
    assert world.polls == [0, 1, 2]
    assert [(s.status, s.platform_ref) for s in world.recorded] == [
        (InstitutionStatus.SUBMITTED, "SBJG0001"),
        (InstitutionStatus.APPROVED, "SBJG0001"),
    ]
    assert world.recorded[-1].verification == world.verification
    [notice] = world.notices
    assert (notice.user_ref, notice.template, notice.params["result"]) == (
        "role:admin",
        "institution_registered",
        "已获批准",
    )


async def test_rejected_by_the_platform(client: Client, uid: str) -> None:
    world = InstitutionWorld()
    world.answers = [RegistrationStatus(state=RegistrationState.REJECTED, reason="执业许可信息不符")]
    queue = f"wf-inst-{uid}"
    async with world.running(client, queue):
        assert await register(client, queue, f"inst-{uid}") is InstitutionStatus.REJECTED
    assert world.recorded[-1].reason == "执业许可信息不符" and world.recorded[-1].verification is None
    assert world.notices[0].params["result"] == "未通过" and world.notices[0].params["detail"] == "执业许可信息不符"


async def test_a_filing_refused_outright_records_the_reason(client: Client, uid: str) -> None:
    world = InstitutionWorld()
    world.refusal = ("INVALID_FILING", "接入 IP 地址“x”无效")
    queue = f"wf-inst-{uid}"
    async with world.running(client, queue):
        assert await register(client, queue, f"inst-{uid}") is InstitutionStatus.REJECTED
    assert world.polls == []
    assert [(s.status, s.reason) for s in world.recorded] == [(InstitutionStatus.REJECTED, "接入 IP 地址“x”无效")]

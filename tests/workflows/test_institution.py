"""InstitutionRegistration against the dev server with fake activities: submit, wait for the platform's decision,
verify after approval, tell the admins; a refused filing or a rejection ends it with the reason. InstitutionReverification
from its Schedule and as an admin asks it: suspend what the platform no longer confirms, reinstate on an admin's
confirmed look-up, tell the admins either way."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client

from models.institution import (
    SYSTEM_CHECKER,
    InstitutionInput,
    InstitutionStatus,
    RegistrationState,
    RegistrationStatus,
    ReverificationInput,
    ReverificationResult,
)
from tests.workflows.account_fakes import InstitutionWorld, ReverificationWorld
from tests.workflows.conftest import first_scheduled_run
from workflows.institution import (
    REVERIFY_SCHEDULE_ID,
    InstitutionRegistrationWorkflow,
    InstitutionReverificationWorkflow,
    institution_workflow_id,
    reverification_schedule,
    reverification_workflow_id,
)


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


# --- re-verification of approved institutions (8.5.4.4) ---


async def test_the_scheduled_run_suspends_what_the_platform_no_longer_confirms(client: Client, uid: str) -> None:
    world = ReverificationWorld(
        {"a": InstitutionStatus.APPROVED, "b": InstitutionStatus.APPROVED, "c": InstitutionStatus.SUSPENDED}
    )
    world.revoked = {"b"}
    queue = f"wf-reverify-{uid}"
    async with world.running(client, queue):
        handle = await client.create_schedule(
            f"{REVERIFY_SCHEDULE_ID}-{uid}",
            reverification_schedule(queue, timedelta(days=1)),
            trigger_immediately=True,
        )
        try:
            run = client.get_workflow_handle_for(
                InstitutionReverificationWorkflow.run, await first_scheduled_run(handle)
            )
            results = await run.result()
        finally:
            await handle.delete()
    # Only the approved ones are looked up; a suspended institution waits for an admin.
    assert [(r.institution_id, r.status_before, r.status_after) for r in results] == [
        ("a", InstitutionStatus.APPROVED, InstitutionStatus.APPROVED),
        ("b", InstitutionStatus.APPROVED, InstitutionStatus.SUSPENDED),
    ]
    assert {check.requested_by for check in world.checks} == {SYSTEM_CHECKER}
    assert len({check.check_id for check in world.checks}) == 2
    [notice] = world.notices
    assert (notice.user_ref, notice.template, notice.params["code"]) == ("role:admin", "institution_suspended", "PDY-b")
    assert notice.params["detail"] == "监管平台显示该机构未获批准"


async def test_an_admin_reinstates_a_suspended_institution_the_platform_confirms(client: Client, uid: str) -> None:
    world = ReverificationWorld({"c": InstitutionStatus.SUSPENDED})
    queue = f"wf-reverify-{uid}"

    async def reverify(requested_by: str) -> list[ReverificationResult]:
        return await client.execute_workflow(
            InstitutionReverificationWorkflow.run,
            ReverificationInput(institution_ids=["c"], requested_by=requested_by),
            id=reverification_workflow_id("c", uid),
            task_queue=queue,
        )

    async with world.running(client, queue):
        # Confirmed again, but nobody asked: still suspended, nobody told.
        [scheduled] = await reverify(SYSTEM_CHECKER)
        assert scheduled.status_after is InstitutionStatus.SUSPENDED and world.notices == []
        [asked] = await reverify("u-admin")
        # The same workflow id again: each run's look-up has its own record.
        assert asked.check_id != scheduled.check_id
    assert (asked.status_before, asked.status_after) == (InstitutionStatus.SUSPENDED, InstitutionStatus.APPROVED)
    assert [(n.template, n.user_ref) for n in world.notices] == [("institution_reinstated", "role:admin")]

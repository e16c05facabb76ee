"""IdentityVerification with a liveness token: the live face check runs after the real-name check, its outcome is
recorded whatever it is, and a failed check fails the verification with the provider's reason. Without a token (no
provider configured, or a flow started before liveness existed) the flow is what it always was."""

from __future__ import annotations

from temporalio.client import Client

from models.identity import IdentityCheckInput, LivenessResult
from tests.workflows.account_fakes import IdentityWorld
from workflows.identity import IdentityVerificationWorkflow, identity_workflow_id


async def verify(client: Client, queue: str, check: IdentityCheckInput) -> bool:
    result = await client.execute_workflow(
        IdentityVerificationWorkflow.run,
        check,
        id=identity_workflow_id(check.patient_id, check.submission),
        task_queue=queue,
    )
    return result.matched


async def test_live_holder_is_verified_and_the_check_recorded(client: Client, uid: str) -> None:
    world = IdentityWorld()
    queue = f"wf-live-{uid}"
    check = IdentityCheckInput(patient_id=f"pat-{uid}", submission="a" * 64, liveness_token="sandbox-live:1")
    async with world.running(client, queue):
        assert await verify(client, queue, check)
    assert world.liveness_checks == [(check, world.liveness)]
    assert world.notices[0].template == "identity_verified"


async def test_a_failed_face_match_fails_the_verification(client: Client, uid: str) -> None:
    world = IdentityWorld()
    world.liveness = LivenessResult(passed=False, score=31, reason="人脸与身份证照片不一致")
    queue = f"wf-live-{uid}"
    check = IdentityCheckInput(patient_id=f"pat-{uid}", submission="b" * 64, liveness_token="sandbox-other-face:1")
    async with world.running(client, queue):
        assert not await verify(client, queue, check)
    assert [result.reason for result in world.results] == ["人脸与身份证照片不一致"]
    assert [passed.passed for _, passed in world.liveness_checks] == [False]
    assert world.notices[0].params["reason"] == "人脸与身份证照片不一致"


async def test_without_a_token_no_liveness_check_runs(client: Client, uid: str) -> None:
    world = IdentityWorld()
    queue = f"wf-live-{uid}"
    async with world.running(client, queue):
        assert await verify(client, queue, IdentityCheckInput(patient_id=f"pat-{uid}", submission="c" * 64))
    assert world.liveness_checks == []

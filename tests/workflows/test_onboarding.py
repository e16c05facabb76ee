"""Onboarding against the dev server with fake activities: the checks decide whether a review is needed, the review is
an Update with a validator, the decision is recorded and the applicant told. The review's deadline (reminders, then
escalation without a decision) runs on a time-skipping server, with the days the settings give."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from core.settings import Settings
from models.notify import Notice
from models.onboarding import (
    Affiliation,
    ApplicationStatus,
    DocumentKind,
    OnboardingInput,
    OnboardingState,
    PractitionerRecord,
    StaffReview,
    StaffRole,
)
from tests.workflows.account_fakes import OnboardingWorld
from tests.workflows.conftest import refusal_type
from workflows.onboarding import OnboardingWorkflow, onboarding_workflow_id


async def start(
    client: Client, queue: str, staff_id: str, attempt: int = 1, deadline: Settings | None = None
) -> WorkflowHandle:
    """Without `deadline` as a flow submitted before review deadlines; with it, as submitting starts one now (the
    settings' review window and reminders)."""
    run = OnboardingInput(staff_id=staff_id, attempt=attempt)
    if deadline is not None:
        run.review_window_s = deadline.staff_review_window_s
        run.review_reminders_s = deadline.staff_review_reminders_s
    return await client.start_workflow(
        OnboardingWorkflow.run, run, id=onboarding_workflow_id(staff_id), task_queue=queue
    )


async def awaiting_review(handle: WorkflowHandle) -> OnboardingState:
    for _ in range(100):
        state: OnboardingState = await handle.query(OnboardingWorkflow.state)
        if state.status is not ApplicationStatus.CHECKING:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError("the checks never finished")


async def test_doctor_passing_the_checks_waits_for_the_admin_and_is_approved(client: Client, uid: str) -> None:
    world = OnboardingWorld()
    queue = f"wf-onboard-{uid}"
    async with world.running(client, queue):
        handle = await start(client, queue, f"stf-{uid}")
        state = await awaiting_review(handle)
        assert state.status is ApplicationStatus.AWAITING_REVIEW
        assert [check.code for check in state.checks] == ["DOCUMENTS_COMPLETE", "REGISTRY", "PRACTICE_YEARS"]
        assert all(check.passed for check in state.checks)
        assert state.evidence_seqs == [40, 41, 42]
        assert world.checks[-1].status is ApplicationStatus.AWAITING_REVIEW

        # A rejection without a reason is refused before anything is written; nothing is decided yet.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                OnboardingWorkflow.review, StaffReview(reviewer_user_id="u-admin", approve=False)
            )
        assert refusal_type(refused.value) == "REASON_REQUIRED"
        assert world.decisions == []

        decided = await handle.execute_update(
            OnboardingWorkflow.review, StaffReview(reviewer_user_id="u-admin", approve=True)
        )
        assert decided.status is ApplicationStatus.APPROVED and decided.decided_by == "u-admin"
        assert (await handle.result()).status is ApplicationStatus.APPROVED
        # A second decision finds the flow over.
        with pytest.raises(Exception):  # noqa: B017 - the update reaches a closed flow: an RPC error, not a refusal
            await handle.execute_update(OnboardingWorkflow.review, StaffReview(reviewer_user_id="u-x", approve=False))
    assert [(d.approved, d.decided_by, d.attempt) for d in world.decisions] == [(True, "u-admin", 1)]
    assert [(n.user_ref, n.template, n.params["role"]) for n in world.notices] == [
        (f"applicant:stf-{uid}", "onboarding_approved", "医生")
    ]


async def test_a_doctor_with_too_little_practice_is_rejected_without_review(client: Client, uid: str) -> None:
    world = OnboardingWorld()
    # The registry's first registration counts, not a licence date the applicant gave.
    world.registry = world.registry.model_copy(
        update={"first_registered_on": date.today().replace(year=date.today().year - 1)}
    )
    queue = f"wf-onboard-{uid}"
    async with world.running(client, queue):
        handle = await start(client, queue, f"stf-{uid}")
        state = await handle.result()
    assert state.status is ApplicationStatus.REJECTED and state.decided_by == "system"
    assert "不足 3 年" in (state.reason or "")
    assert [(d.approved, d.reason) for d in world.decisions] == [(False, state.reason)]
    [notice] = world.notices
    assert notice.template == "onboarding_rejected" and "不足 3 年" in notice.params["reason"]


async def test_unknown_licence_is_rejected(client: Client, uid: str) -> None:
    world = OnboardingWorld()
    world.registry = PractitionerRecord(found=False, reason="国家医师执业注册系统中未查询到该执业证书编码")
    queue = f"wf-onboard-{uid}"
    async with world.running(client, queue):
        state = await (await start(client, queue, f"stf-{uid}")).result()
    assert state.status is ApplicationStatus.REJECTED
    assert "未查询到该执业证书编码" in (state.reason or "")


async def test_third_party_pharmacist_needs_the_agreement_and_the_admin_may_reject(client: Client, uid: str) -> None:
    world = OnboardingWorld()
    world.facts = world.facts.model_copy(
        update={
            "role": StaffRole.PHARMACIST,
            "affiliation": Affiliation.THIRD_PARTY,
            "documents": [DocumentKind.ID_PHOTO, DocumentKind.PRACTICE_LICENCE],
        }
    )
    queue = f"wf-onboard-{uid}"
    async with world.running(client, queue):
        without = await (await start(client, queue, f"stf-a-{uid}")).result()
        assert without.status is ApplicationStatus.REJECTED
        assert "合作协议" in (without.reason or "")

        world.facts.documents.append(DocumentKind.AGREEMENT)
        handle = await start(client, queue, f"stf-b-{uid}")
        state = await awaiting_review(handle)
        assert [check.code for check in state.checks] == ["DOCUMENTS_COMPLETE", "AGREEMENT_SIGNED"]
        decided = await handle.execute_update(
            OnboardingWorkflow.review, StaffReview(reviewer_user_id="u-admin", approve=False, reason="协议已过期")
        )
        assert decided.status is ApplicationStatus.REJECTED and decided.reason == "协议已过期"
        await handle.result()
    # Pharmacists are not looked up in the practitioner registry.
    assert world.lookups == 0
    assert world.notices[-1].template == "onboarding_rejected" and world.notices[-1].params["reason"] == "协议已过期"
    assert world.notices[-1].params["role"] == "药师"


async def test_a_review_while_the_checks_run_is_refused(client: Client, uid: str) -> None:
    world = OnboardingWorld()
    world.gate = asyncio.Event()
    queue = f"wf-onboard-{uid}"
    async with world.running(client, queue):
        handle = await start(client, queue, f"stf-{uid}")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                OnboardingWorkflow.review, StaffReview(reviewer_user_id="u-admin", approve=True)
            )
        assert refusal_type(refused.value) == "APPLICATION_NOT_AWAITING_REVIEW"
        world.gate.set()
        assert (await awaiting_review(handle)).status is ApplicationStatus.AWAITING_REVIEW
        await handle.terminate("test over")
    assert world.decisions == []


# --- the review deadline, on a server whose clock the test moves (time skipping) ---

DAY = timedelta(days=1)


async def admin_notices(world: OnboardingWorld, count: int) -> list[Notice]:
    """The admins' notices once `count` have gone out (beside the flow, so a moment after it moved on)."""
    for _ in range(100):
        sent = [notice for notice in world.notices if notice.user_ref == "role:admin"]
        if len(sent) >= count:
            return sent
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} admin notices expected, got {world.notices}")


async def test_an_unreviewed_application_reminds_the_admins_then_escalates_and_stays_pending(
    skipping: WorkflowEnvironment, settings: Settings, uid: str
) -> None:
    assert (settings.staff_review_window_s, settings.staff_review_reminders_s) == (5 * 86400, [2 * 86400, 86400])
    world = OnboardingWorld()
    queue = f"wf-onboard-{uid}"
    async with world.running(skipping.client, queue):
        handle = await start(skipping.client, queue, f"stf-{uid}", deadline=settings)
        waiting = await awaiting_review(handle)
        assert waiting.review_due_at is not None and waiting.escalated_at is None
        assert world.checks[-1].review_due_at == waiting.review_due_at

        await skipping.fast_forward(handle, 3 * DAY + timedelta(hours=1))
        [first] = await admin_notices(world, 1)
        assert (first.template, first.params["staff_id"], first.params["role"]) == (
            "onboarding_review_reminder",
            f"stf-{uid}",
            "医生",
        )
        assert (await handle.query(OnboardingWorkflow.state)).escalated_at is None

        await skipping.fast_forward(handle, 2 * DAY)
        sent = await admin_notices(world, 3)
        assert [notice.template for notice in sent] == [
            "onboarding_review_reminder",
            "onboarding_review_reminder",
            "onboarding_review_overdue",
        ]
        overdue = await handle.query(OnboardingWorkflow.state)
        # Escalated, not decided: still waiting for an admin, and recorded so the admins' list shows it.
        assert overdue.status is ApplicationStatus.AWAITING_REVIEW and overdue.escalated_at is not None
        assert overdue.escalated_at >= waiting.review_due_at
        assert world.checks[-1].escalated_at == overdue.escalated_at and world.decisions == []

        await skipping.fast_forward(handle, 10 * DAY)
        assert (await handle.query(OnboardingWorkflow.state)).status is ApplicationStatus.AWAITING_REVIEW
        decided = await handle.execute_update(
            OnboardingWorkflow.review, StaffReview(reviewer_user_id="u-admin", approve=True)
        )
        assert decided.status is ApplicationStatus.APPROVED
        await handle.result()
    assert [(d.approved, d.decided_by) for d in world.decisions] == [(True, "u-admin")]
    assert world.notices[-1].template == "onboarding_approved"


async def test_a_review_in_time_sends_no_reminder(skipping: WorkflowEnvironment, settings: Settings, uid: str) -> None:
    world = OnboardingWorld()
    queue = f"wf-onboard-{uid}"
    async with world.running(skipping.client, queue):
        handle = await start(skipping.client, queue, f"stf-{uid}", deadline=settings)
        await awaiting_review(handle)
        await skipping.fast_forward(handle, DAY)
        decided = await handle.execute_update(
            OnboardingWorkflow.review, StaffReview(reviewer_user_id="u-admin", approve=False, reason="证照模糊")
        )
        assert decided.status is ApplicationStatus.REJECTED and decided.escalated_at is None
        await handle.result()
    assert [notice.template for notice in world.notices] == ["onboarding_rejected"]

"""The Prescription flow around review: stock checked again at signing, forcing a returned prescription through,
claims on the review queue and the review SLA reaching the pharmacists on duty."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from models.duty import ON_DUTY_PHARMACISTS
from models.prescription import (
    CheckResult,
    ClaimReview,
    Finding,
    PrescriptionInput,
    ReviewPrescription,
    RevisePrescription,
    RxItem,
    RxStage,
    Severity,
    SignPrescription,
    Verdict,
)
from tests.workflows.conftest import Harness
from tests.workflows.test_prescription import DRAFT, checked, until
from workflows.prescription import PrescriptionWorkflow, prescription_workflow_id

SHORT = CheckResult(
    verdict=Verdict.BLOCK,
    findings=[
        Finding(
            code="STOCK_SHORT",
            severity=Severity.BLOCK,
            herbs=["茯苓"],
            message="茯苓库存不足：需要105克，现有50克，缺55克",
            source="药房库存",
        )
    ],
)


async def start(h: Harness, review_sla_s: int = 600) -> tuple[PrescriptionInput, WorkflowHandle]:
    rx = PrescriptionInput(
        prescription_id=f"rx-{uuid.uuid4().hex[:8]}",
        visit_id="visit-1",
        patient_id="pat-1",
        doctor_id="doc-1",
        draft=DRAFT,
        channel="sandbox",
        review_sla_s=review_sla_s,
        pay_window_s=600,
        delivery_sla_s=3600,
    )
    handle = await h.client.start_workflow(
        PrescriptionWorkflow.run, rx, id=prescription_workflow_id(rx.prescription_id), task_queue=h.queue
    )
    await checked(handle)
    return rx, handle


async def refused(call) -> tuple[str, str]:
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await call
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.type or "", cause.message


async def test_stock_short_at_signing_blocks_it_naming_the_herb_and_the_shortfall(harness: Harness) -> None:
    _, handle = await start(harness)
    harness.world.check = SHORT  # the stock ran out between writing the prescription and signing it
    code, message = await refused(handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1")))
    assert code == "RX_BLOCKED"
    assert "茯苓库存不足" in message and "缺55克" in message
    state = await handle.query(PrescriptionWorkflow.state)
    assert state.stage is RxStage.DRAFT and state.check == SHORT and state.doctor_signatures == []
    assert harness.world.rx_states[-1].check == SHORT  # the read model shows why

    # Refused up front from now on, without asking the pharmacy again.
    checks = harness.world.calls["check_prescription"]
    code, _ = await refused(handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1")))
    assert code == "RX_BLOCKED" and harness.world.calls["check_prescription"] == checks

    # Restocked: a revision checks again and the signature goes through (checking once more).
    harness.world.check = CheckResult(verdict=Verdict.PASS, findings=[])
    await handle.execute_update(PrescriptionWorkflow.revise, RevisePrescription(doctor_id="doc-1", draft=DRAFT))
    signed = await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
    assert signed.stage is RxStage.AWAITING_REVIEW and signed.submitted_at is not None
    assert harness.world.calls["check_prescription"] == checks + 2
    await handle.terminate("test done")


async def test_a_returned_prescription_signed_again_unchanged_is_forced_through_and_recorded(harness: Harness) -> None:
    rx, handle = await start(harness)
    await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
    await handle.execute_update(
        PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-1", approve=False, reason="茯苓剂量偏大")
    )

    # Not silently resubmitted: an unchanged "revision" is refused, and signing over the return needs a reason.
    code, _ = await refused(
        handle.execute_update(PrescriptionWorkflow.revise, RevisePrescription(doctor_id="doc-1", draft=DRAFT))
    )
    assert code == "RX_UNCHANGED"
    code, _ = await refused(handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1")))
    assert code == "RX_JUSTIFICATION_REQUIRED"

    justification = "患者既往服用同量茯苓无不良反应，病情需要"
    forced = await handle.execute_update(
        PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1", reason=justification)
    )
    assert forced.stage is RxStage.AWAITING_REVIEW and forced.revision == 0
    assert forced.forced and forced.forced_reason == justification and forced.forced_count == 1
    assert [s.reason for s in forced.doctor_signatures] == [None, justification]
    [record] = harness.world.forced
    assert (record.prescription_id, record.count, record.revision) == (rx.prescription_id, 1, 0)
    assert (record.returned_by, record.return_reason, record.justification) == ("ph-1", "茯苓剂量偏大", justification)
    assert harness.world.rx_states[-1].forced

    async def told() -> bool:
        return any(n.template == "rx_to_review_forced" for n in harness.world.notices)

    await until(told)
    [notice] = [n for n in harness.world.notices if n.template == "rx_to_review_forced"]
    assert notice.params == {
        "prescription_id": rx.prescription_id,
        "flag": "茯苓剂量偏大",
        "justification": justification,
    }

    # Returned once more and forced again: a second record, and its own notices.
    await handle.execute_update(
        PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-2", approve=False, reason="仍需核对")
    )
    again = await handle.execute_update(
        PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1", reason="已与患者确认，坚持原方")
    )
    assert again.forced_count == 2 and [f.count for f in harness.world.forced] == [1, 2]
    approved = await handle.execute_update(
        PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-2", approve=True)
    )
    assert approved.stage is RxStage.AWAITING_CONFIRMATION and approved.forced
    returned_keys = [n.key for n in harness.world.notices if n.template == "rx_returned"]
    assert len(returned_keys) == len(set(returned_keys)) == 2
    await handle.terminate("test done")


async def test_a_revision_after_a_forced_signing_is_no_longer_forced(harness: Harness) -> None:
    _, handle = await start(harness)
    await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
    returned = ReviewPrescription(pharmacist_id="ph-1", approve=False, reason="茯苓剂量偏大")
    await handle.execute_update(PrescriptionWorkflow.review, returned)
    await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1", reason="病情需要"))
    await handle.execute_update(PrescriptionWorkflow.review, returned)
    revised_draft = DRAFT.model_copy(update={"items": [*DRAFT.items[:2], RxItem(herb="茯苓", dose_g=10)]})
    revised = await handle.execute_update(
        PrescriptionWorkflow.revise, RevisePrescription(doctor_id="doc-1", draft=revised_draft)
    )
    assert revised.revision == 1 and not revised.forced and revised.forced_reason is None
    signed = await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
    assert signed.stage is RxStage.AWAITING_REVIEW and not signed.forced and len(harness.world.forced) == 1
    await handle.terminate("test done")


async def test_a_claim_keeps_other_pharmacists_off_until_it_expires_or_the_review_ends(harness: Harness) -> None:
    _, handle = await start(harness)
    code, _ = await refused(
        handle.execute_update(PrescriptionWorkflow.claim_review, ClaimReview(pharmacist_id="ph-1", ttl_s=60))
    )
    assert code == "RX_NOT_AWAITING_REVIEW"  # nothing to claim before the doctor signs
    await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))

    claimed = await handle.execute_update(
        PrescriptionWorkflow.claim_review, ClaimReview(pharmacist_id="ph-1", ttl_s=60)
    )
    assert claimed.claimed_by == "ph-1" and claimed.claim_expires_at is not None
    assert harness.world.rx_states[-1].claimed_by == "ph-1"
    code, message = await refused(
        handle.execute_update(PrescriptionWorkflow.claim_review, ClaimReview(pharmacist_id="ph-2", ttl_s=60))
    )
    assert (code, message) == ("RX_CLAIMED", "该处方正由其他药师审核")
    code, _ = await refused(
        handle.execute_update(PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-2", approve=True))
    )
    assert code == "RX_CLAIMED"

    # Claiming again extends one's own claim; a short one lapses and frees the prescription for anyone.
    short = await handle.execute_update(PrescriptionWorkflow.claim_review, ClaimReview(pharmacist_id="ph-1", ttl_s=1))
    assert short.claim_expires_at is not None and claimed.claim_expires_at is not None
    assert short.claim_expires_at < claimed.claim_expires_at
    await asyncio.sleep(1.2)
    taken = await handle.execute_update(PrescriptionWorkflow.claim_review, ClaimReview(pharmacist_id="ph-2", ttl_s=60))
    assert taken.claimed_by == "ph-2"

    returned = await handle.execute_update(
        PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-2", approve=False, reason="请补充诊断")
    )
    assert returned.stage is RxStage.RETURNED and returned.claimed_by is None and returned.claim_expires_at is None
    assert returned.returned_by == "ph-2"
    await handle.terminate("test done")


async def test_two_claims_at_once_leave_one_holder(harness: Harness) -> None:
    _, handle = await start(harness)
    await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
    outcomes = await asyncio.gather(
        *(
            handle.execute_update(PrescriptionWorkflow.claim_review, ClaimReview(pharmacist_id=who, ttl_s=60))
            for who in ("ph-1", "ph-2")
        ),
        return_exceptions=True,
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, WorkflowUpdateFailedError)]
    assert len(won) == 1 and len(lost) == 1
    assert isinstance(lost[0].cause, ApplicationError) and lost[0].cause.type == "RX_CLAIMED"
    assert (await handle.query(PrescriptionWorkflow.state)).claimed_by == won[0].claimed_by
    await handle.terminate("test done")


async def test_a_review_past_its_sla_tells_the_admins_and_the_pharmacists_on_duty(harness: Harness) -> None:
    _, handle = await start(harness, review_sla_s=1)
    await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))

    async def overdue() -> bool:
        return sum(n.template == "rx_review_overdue" for n in harness.world.notices) == 2

    await until(overdue, attempts=100)
    told = {n.user_ref for n in harness.world.notices if n.template == "rx_review_overdue"}
    assert told == {"role:admin", ON_DUTY_PHARMACISTS}
    approved = await handle.execute_update(
        PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-1", approve=True)
    )
    assert approved.stage is RxStage.AWAITING_CONFIRMATION
    await handle.terminate("test done")

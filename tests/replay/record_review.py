"""Record the histories of the review paths added to the Prescription flow (checking again at signing, claims,
forcing a returned prescription through, the review SLA reaching the pharmacists on duty) and of the pharmacist
duty check, under `tests/histories/`, as `tests/replay/record.py` does for the others (same rules: record only new
scenarios; never re-record to make a replay pass).

Run with `.venv/bin/python -m tests.replay.record_review` (optionally naming scenarios).
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from models.common import HOSPITAL_TZ
from models.duty import DutyCheckInput, DutyStatus
from models.prescription import (
    CheckResult,
    ClaimReview,
    Finding,
    PrescriptionInput,
    ReviewPrescription,
    RevisePrescription,
    RxStage,
    Severity,
    SignPrescription,
    Verdict,
)
from tests.replay.record import Recorder, main
from tests.workflows.conftest import Harness
from tests.workflows.fakes import FakeWorld
from tests.workflows.test_prescription import DRAFT, checked, until
from workflows.duty import PharmacistDutyCheckWorkflow
from workflows.prescription import PrescriptionWorkflow, prescription_workflow_id

ALL_DAY = DutyCheckInput(opens=time(0, 0), closes=time(23, 59, 59, 999999), grace_s=0)


async def _start(h: Harness, rx_id: str, review_sla_s: int, pay_window_s: int) -> WorkflowHandle:
    rx = PrescriptionInput(
        prescription_id=rx_id,
        visit_id="visit-1",
        patient_id="pat-1",
        doctor_id="doc-1",
        draft=DRAFT,
        channel="sandbox",
        review_sla_s=review_sla_s,
        pay_window_s=pay_window_s,
        delivery_sla_s=3600,
    )
    handle = await h.client.start_workflow(
        PrescriptionWorkflow.run, rx, id=prescription_workflow_id(rx_id), task_queue=h.queue
    )
    await checked(handle)
    return handle


async def rx_short_at_sign_forced(r: Recorder) -> None:
    """Stock runs short between writing and signing (the signature is refused); restocked, revised, signed, claimed,
    returned, signed again unchanged with a justification (forced), approved, never confirmed."""
    world = FakeWorld()
    async with r.harness("rx-forced", world) as h:
        handle = await _start(h, "rec-rx-forced", review_sla_s=600, pay_window_s=2)
        world.check = CheckResult(
            verdict=Verdict.BLOCK,
            findings=[
                Finding(code="STOCK_SHORT", severity=Severity.BLOCK, herbs=["茯苓"], message="茯苓库存不足：缺55克")
            ],
        )
        try:
            await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
        except WorkflowUpdateFailedError:
            pass
        else:
            raise AssertionError("signed with stock short")
        world.check = CheckResult(verdict=Verdict.PASS, findings=[])
        await handle.execute_update(PrescriptionWorkflow.revise, RevisePrescription(doctor_id="doc-1", draft=DRAFT))
        await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))
        await handle.execute_update(PrescriptionWorkflow.claim_review, ClaimReview(pharmacist_id="ph-1", ttl_s=600))
        await handle.execute_update(
            PrescriptionWorkflow.review,
            ReviewPrescription(pharmacist_id="ph-1", approve=False, reason="茯苓剂量偏大"),
        )
        await handle.execute_update(
            PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1", reason="患者既往服用同量无不良反应")
        )
        await handle.execute_update(PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-2", approve=True))
        final = await handle.result()
        assert final.stage is RxStage.VOID and final.forced and world.forced
        await r.save(handle.id, "Prescription-short_at_sign_returned_forced_approved_unconfirmed_void")


async def rx_overdue_to_on_duty(r: Recorder) -> None:
    """The review SLA passes: the admins and the pharmacists on duty are told; then claimed, approved, never
    confirmed."""
    world = FakeWorld()
    async with r.harness("rx-overdue-duty", world) as h:
        handle = await _start(h, "rec-rx-overdue-duty", review_sla_s=1, pay_window_s=2)
        await handle.execute_update(PrescriptionWorkflow.sign, SignPrescription(doctor_id="doc-1"))

        async def overdue() -> bool:
            return sum(n.template == "rx_review_overdue" for n in world.notices) == 2

        await until(overdue, attempts=100)
        await handle.execute_update(PrescriptionWorkflow.claim_review, ClaimReview(pharmacist_id="ph-1", ttl_s=600))
        await handle.execute_update(PrescriptionWorkflow.review, ReviewPrescription(pharmacist_id="ph-1", approve=True))
        assert (await handle.result()).stage is RxStage.VOID
        await r.save(handle.id, "Prescription-review_overdue_on_duty_claimed_approved_unconfirmed_void")


async def duty_gap_alerted(r: Recorder) -> None:
    world = FakeWorld()
    world.duty = DutyStatus(on_duty=0, uncovered_since=ALL_DAY.opened_at(datetime.now(UTC)))
    async with r.harness("duty-gap", world) as h:
        workflow_id = "pharmacist-duty-check-recorded-gap"
        result = await h.client.execute_workflow(
            PharmacistDutyCheckWorkflow.run, ALL_DAY, id=workflow_id, task_queue=h.queue
        )
        assert result.alert_key is not None
        await r.save(workflow_id, "PharmacistDutyCheck-gap_alerted")


async def duty_outside_hours(r: Recorder) -> None:
    today = datetime.now(UTC).astimezone(HOSPITAL_TZ).isoweekday()
    closed_today = ALL_DAY.model_copy(update={"weekdays": [d for d in range(1, 8) if d != today]})
    async with r.harness("duty-closed") as h:
        workflow_id = "pharmacist-duty-check-recorded-closed"
        result = await h.client.execute_workflow(
            PharmacistDutyCheckWorkflow.run, closed_today, id=workflow_id, task_queue=h.queue
        )
        assert not result.in_hours
        await r.save(workflow_id, "PharmacistDutyCheck-outside_hours")


SCENARIOS = {
    "Prescription-short_at_sign_returned_forced_approved_unconfirmed_void": rx_short_at_sign_forced,
    "Prescription-review_overdue_on_duty_claimed_approved_unconfirmed_void": rx_overdue_to_on_duty,
    "PharmacistDutyCheck-gap_alerted": duty_gap_alerted,
    "PharmacistDutyCheck-outside_hours": duty_outside_hours,
}


if __name__ == "__main__":
    main(SCENARIOS)

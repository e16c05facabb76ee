"""Record the histories of the doctor's-day paths of the Visit and RevisitCheck flows under `tests/histories/`, as
`tests/replay/record.py` does for the others (same rules: record only new scenarios; never re-record to make a
replay pass): a consultation (会诊) with an invited doctor's opinion and prescription, prescribing refused until a
child's guardian is recorded, and revisit checks that wait for the review of uploaded records.

Run with `.venv/bin/python -m tests.replay.record_doctor_day` (optionally naming scenarios).
"""

from __future__ import annotations

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError

from models.consultation import GiveOpinion, InviteConsultant
from models.record import SignRecord
from models.revisit import (
    RevisitCheckInput,
    RevisitStatus,
    UploadReview,
    UploadSubmitted,
)
from models.visit import AcceptVisit, FinishVisit, Prescribe, VisitStage, WriteRecord
from tests.replay.record import Recorder, _visit, main, timer_started
from tests.workflows.fakes import FakeWorld
from tests.workflows.test_prescription import DRAFT
from tests.workflows.test_revisit_uploads import HIS_EVIDENCE, start
from tests.workflows.test_visit import RECORD, book, pay, wait_stage
from workflows.prescription import prescription_workflow_id
from workflows.revisit import RevisitCheckWorkflow
from workflows.visit import VisitWorkflow


async def visit_consultation(r: Recorder) -> None:
    """Accepted; a consultant invited, signs an opinion; prescribing refused until the child's guardian is recorded,
    then the consultant prescribes; the visit's doctor writes, signs and finishes."""
    world = FakeWorld()
    async with r.harness("visit-consultation", world) as h:
        visit = _visit("rec-consultation")
        _, handle = await book(h, visit)
        await timer_started(h.client.get_workflow_handle(f"bill-{visit.visit_id}-reg"))
        await pay(h, visit)
        await wait_stage(handle, VisitStage.WAITING_DOCTOR)
        await handle.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id="doc-1"))
        invite = InviteConsultant(doctor_id="doc-1", consultant_id="doc-2", reason="失眠伴心悸，请心血管科会诊")
        await handle.execute_update(VisitWorkflow.invite_consultant, invite)
        opinion = GiveOpinion(doctor_id="doc-2", opinion="证属心脾两虚，建议归脾汤加减。")
        await handle.execute_update(VisitWorkflow.give_opinion, opinion)
        rx_id = f"{visit.visit_id}-rx1"
        prescribe = Prescribe(doctor_id="doc-2", prescription_id=rx_id, draft=DRAFT)
        world.guardian_missing = True
        try:
            await handle.execute_update(VisitWorkflow.prescribe, prescribe)
        except WorkflowUpdateFailedError:
            pass
        else:
            raise AssertionError("prescribed for a child without a guardian recorded")
        world.guardian_missing = False
        await handle.execute_update(VisitWorkflow.prescribe, prescribe)
        await handle.execute_update(VisitWorkflow.write_record, WriteRecord(doctor_id="doc-1", record=RECORD))
        await handle.execute_update(VisitWorkflow.sign_record, SignRecord(doctor_id="doc-1"))
        await handle.execute_update(VisitWorkflow.finish, FinishVisit(doctor_id="doc-1"))
        final = await handle.result()
        assert final.stage is VisitStage.FINISHED and final.opinions == ["doc-2"] and final.prescription_ids == [rx_id]
        await r.save(handle.id, "Visit-consultation_guardian_refused_consultant_prescribed_finished")
        await h.client.get_workflow_handle(prescription_workflow_id(rx_id)).terminate("recorded elsewhere")


def _check(patient_id: str) -> RevisitCheckInput:
    return RevisitCheckInput(patient_id=patient_id, disease_code="D1", window_days=180, valid_days=90)


def _review(upload_id: str, approve: bool, reason: str = "") -> UploadReview:
    return UploadReview(upload_id=upload_id, reviewer_id="doc-1", approve=approve, reason=reason)


async def _eligible_until_terminated(r: Recorder, handle: WorkflowHandle, file_stem: str) -> None:
    """Eligible decisions sleep until they expire (whole days): recorded up to that timer, then terminated."""
    await timer_started(handle)
    await handle.terminate("recorded up to the expiry timer")
    await r.save(handle.id, file_stem, WorkflowExecutionStatus.TERMINATED)


async def revisit_upload_rejected_then_approved(r: Recorder) -> None:
    world = FakeWorld()
    world.pending = ["rec-upl-a", "rec-upl-b"]
    async with r.harness("revisit-uploads-approved", world) as h:
        decision, handle = await start(h, _check("rec-pat-upl-yes"))
        assert decision.status is RevisitStatus.PENDING_REVIEW
        await handle.execute_update(RevisitCheckWorkflow.review_upload, _review("rec-upl-a", False, "图片模糊"))
        approved = await handle.execute_update(RevisitCheckWorkflow.review_upload, _review("rec-upl-b", True))
        assert approved.status is RevisitStatus.ELIGIBLE
        await _eligible_until_terminated(r, handle, "RevisitCheck-upload_rejected_then_approved_terminated")


async def revisit_upload_rejected(r: Recorder) -> None:
    world = FakeWorld()
    world.pending = ["rec-upl-c"]
    async with r.harness("revisit-uploads-rejected", world) as h:
        _, handle = await start(h, _check("rec-pat-upl-no"))
        await handle.execute_update(RevisitCheckWorkflow.review_upload, _review("rec-upl-c", False, "非本院就诊记录"))
        assert (await handle.result()).status is RevisitStatus.NOT_ELIGIBLE
        await r.save(handle.id, "RevisitCheck-upload_rejected_not_eligible")


async def revisit_eligible_then_upload_reviewed(r: Recorder) -> None:
    world = FakeWorld()
    world.evidence = [HIS_EVIDENCE]
    async with r.harness("revisit-eligible-upload", world) as h:
        _, handle = await start(h, _check("rec-pat-upl-late"))
        await handle.execute_update(RevisitCheckWorkflow.add_upload, UploadSubmitted(upload_id="rec-upl-d"))
        await handle.execute_update(RevisitCheckWorkflow.review_upload, _review("rec-upl-d", True))
        await _eligible_until_terminated(r, handle, "RevisitCheck-eligible_upload_added_approved_terminated")


SCENARIOS = {
    "Visit-consultation_guardian_refused_consultant_prescribed_finished": visit_consultation,
    "RevisitCheck-upload_rejected_then_approved_terminated": revisit_upload_rejected_then_approved,
    "RevisitCheck-upload_rejected_not_eligible": revisit_upload_rejected,
    "RevisitCheck-eligible_upload_added_approved_terminated": revisit_eligible_then_upload_reviewed,
}


if __name__ == "__main__":
    main(SCENARIOS)

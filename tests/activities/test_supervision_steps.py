"""The supervision upload step against PostgreSQL and the sandbox platform: which records of a day it builds and
what they say, that a record the platform has in the same version is not sent again, that a rejected one is sent
again once put right, batches by id, resending on request, and that a retried step never sends a batch twice.

Each test works on a day of its own far in the past, so the shared database's other visits stay out of its window.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import delete, select, update
from sqlmodel import col
from temporalio.testing import ActivityEnvironment

from activities.adapters.supervision.sandbox import SandboxSupervision
from activities.supervision import SupervisionActivities
from core.crypto.sm import FieldCipher
from models import idcard
from models.common import HOSPITAL_TZ, Role, hospital_days
from models.prescription import PrescriptionDraft, RxItem
from models.supervision import BatchResult, SupervisionKind, UploadBatch, UploadTotals
from models.tables import (
    Doctor,
    Fulfilment,
    MedicalRecord,
    Prescription,
    SupervisionRecordState,
    Visit,
)
from tests.api.consult_helpers import ConsultVisit, give_identity, make_consult_visit, make_prescription
from tests.api.helpers import make_user

REVISIT, PRESCRIPTION = SupervisionKind.REVISIT, SupervisionKind.PRESCRIPTION
DRAFT = PrescriptionDraft(diagnosis="胃脘痛 脾胃虚弱证", items=[RxItem(herb="党参", dose_g=15)], doses=7)
RECORD = {
    "chief_complaint": "胃脘隐痛三月",
    "present_illness": "……",
    "tongue": "舌淡苔白",
    "pulse": "脉细弱",
    "tcm_disease": "胃脘痛",
    "tcm_disease_code": "A17.01",
    "tcm_syndrome": "脾胃虚弱证",
    "treatment_principle": "健脾益气",
}


@pytest.fixture
def day() -> date:
    return date(2001, 1, 1) + timedelta(days=random.randrange(7000))


@pytest.fixture
def cipher(settings) -> FieldCipher:  # type: ignore[no-untyped-def]
    return FieldCipher(settings.pii_key, settings.blind_index_key)


@pytest.fixture
def platform(sessions, settings) -> SandboxSupervision:  # type: ignore[no-untyped-def]
    return SandboxSupervision(sessions, settings)


@pytest.fixture
def steps(sessions, cipher: FieldCipher, platform: SandboxSupervision) -> SupervisionActivities:  # type: ignore[no-untyped-def]
    return SupervisionActivities(sessions, cipher, platform)


def during(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), HOSPITAL_TZ).astimezone(UTC)


class Upload:
    """Runs the step as one flow run would: the same workflow and run ids for every batch and retry."""

    def __init__(self, steps: SupervisionActivities) -> None:
        self.steps = steps
        self.env = ActivityEnvironment()
        self.env.info = dataclasses.replace(
            self.env.info, workflow_id=f"supervise-test-{uuid.uuid4().hex[:8]}", workflow_run_id=str(uuid.uuid4())
        )

    async def batch(
        self, kind: SupervisionKind, day: date, *, after: str | None = None, **options: object
    ) -> BatchResult:
        batch = UploadBatch(kind=kind, day=day, after=after, size=int(options.pop("size", 50)), **options)  # type: ignore[arg-type]
        return await self.env.run(self.steps.upload_batch, batch)

    async def day(self, kind: SupervisionKind, day: date, **options: object) -> UploadTotals:
        totals, after = UploadTotals(), None
        while True:
            result = await self.batch(kind, day, after=after, **options)
            totals = totals.add(result.totals)
            if (after := result.after) is None:
                return totals


async def _identified(
    sessions, cipher: FieldCipher, visit: ConsultVisit, *, licence: str | None = "110420000012345"
) -> str:  # type: ignore[no-untyped-def]
    """Give the visit's patient a name and ID card, and its doctor a practice licence number (or none); the ID card
    number."""
    number = await give_identity(sessions, cipher, visit.patient_id, "张三")
    async with sessions() as session, session.begin():
        await session.execute(update(Doctor).where(col(Doctor.id) == visit.doctor_id).values(licence_no=licence))
    return number


async def _revisit(
    sessions, cipher: FieldCipher, day: date, *, recorded: bool = True, stage: str = "finished"
) -> tuple[ConsultVisit, str]:  # type: ignore[no-untyped-def]
    visit = await make_consult_visit(sessions, stage=stage, updated_at=during(day))
    number = await _identified(sessions, cipher, visit)
    if recorded:
        await _sign_record(sessions, visit, during(day, 11))
    return visit, number


async def _sign_record(sessions, visit: ConsultVisit, signed_at: datetime) -> None:  # type: ignore[no-untyped-def]
    async with sessions() as session, session.begin():
        session.add(
            MedicalRecord(
                visit_id=visit.visit_id,
                patient_id=visit.patient_id,
                doctor_id=visit.doctor_id,
                content=RECORD,
                digest=uuid.uuid4().hex * 2,
                signed_at=signed_at,
            )
        )


async def _rows(sessions, kind: SupervisionKind, *ids: str) -> dict[str, SupervisionRecordState]:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        rows = await session.scalars(
            select(SupervisionRecordState).where(
                col(SupervisionRecordState.kind) == kind, col(SupervisionRecordState.record_id).in_(ids)
            )
        )
        return {row.record_id: row for row in rows}


def test_a_day_is_the_beijing_day() -> None:
    start, end = hospital_days(date(2026, 11, 25), date(2026, 11, 25))
    assert (start, end) == (datetime(2026, 11, 24, 16, tzinfo=UTC), datetime(2026, 11, 25, 16, tzinfo=UTC))


async def test_a_days_revisits_are_built_sent_and_answered(sessions, cipher, steps, platform, day) -> None:  # type: ignore[no-untyped-def]
    good, number = await _revisit(sessions, cipher, day)
    unrecorded, _ = await _revisit(sessions, cipher, day, recorded=False)
    await _revisit(sessions, cipher, day, stage="in_consult")  # not concluded: not a revisit record yet
    await _revisit(sessions, cipher, day + timedelta(days=1))  # another day

    built = await steps.records(UploadBatch(kind=REVISIT, day=day, after=None, size=10))
    assert [r.record_id for r in built] == sorted([good.visit_id, unrecorded.visit_id])
    records = {r.record_id: r for r in built}
    body = records[good.visit_id].body
    assert body["patient"] == {
        "id": good.patient_id,
        "name": "张三",
        "id_card_no": number,
        "sex": idcard.sex(number),
        "birth_date": idcard.birth_date(number).isoformat(),
    }
    assert body["doctor"]["id"] == good.doctor_id and body["doctor"]["licence_no"] == "110420000012345"
    assert body["doctor"]["subject_code"] == "50.01"
    assert body["record"]["tcm_disease"] == "胃脘痛" and body["record"]["tcm_syndrome"] == "脾胃虚弱证"
    assert records[unrecorded.visit_id].body["record"] is None

    totals = await Upload(steps).day(REVISIT, day)
    assert totals == UploadTotals(examined=2, accepted=1, rejected=1)
    rows = await _rows(sessions, REVISIT, good.visit_id, unrecorded.visit_id)
    assert (rows[good.visit_id].status, rows[good.visit_id].day) == ("accepted", day)
    assert rows[unrecorded.visit_id].status == "rejected"
    assert "病历" in (rows[unrecorded.visit_id].reason or "")
    assert await platform.held(REVISIT, good.visit_id) == records[good.visit_id].digest == rows[good.visit_id].digest


async def test_only_what_changed_is_sent_again_and_a_record_put_right_is_accepted(
    sessions, cipher, steps, platform, day
) -> None:  # type: ignore[no-untyped-def]
    good, _ = await _revisit(sessions, cipher, day)
    unrecorded, _ = await _revisit(sessions, cipher, day, recorded=False)
    assert await Upload(steps).day(REVISIT, day) == UploadTotals(examined=2, accepted=1, rejected=1)
    # Run again: the platform has both in these versions (the rejected one would be rejected again).
    assert await Upload(steps).day(REVISIT, day) == UploadTotals(examined=2, unchanged=2)

    await _sign_record(sessions, unrecorded, during(day, 15))  # signed after the visit ended: the day's change
    assert await Upload(steps).day(REVISIT, day) == UploadTotals(examined=2, unchanged=1, accepted=1)
    rows = await _rows(sessions, REVISIT, good.visit_id, unrecorded.visit_id)
    assert (rows[unrecorded.visit_id].status, rows[unrecorded.visit_id].sends) == ("accepted", 2)
    assert rows[unrecorded.visit_id].reason is None and rows[good.visit_id].sends == 1

    # An operator's resend sends everything of the day again.
    assert await Upload(steps).day(REVISIT, day, resend=True) == UploadTotals(examined=2, accepted=2)
    assert {row.sends for row in (await _rows(sessions, REVISIT, good.visit_id, unrecorded.visit_id)).values()} == {
        2,
        3,
    }


async def test_batches_go_by_id(sessions, cipher, steps, day) -> None:  # type: ignore[no-untyped-def]
    ids = sorted([(await _revisit(sessions, cipher, day))[0].visit_id for _ in range(5)])
    upload = Upload(steps)
    first = await upload.batch(REVISIT, day, size=2)
    assert first.after == ids[1] and first.totals.accepted == 2
    second = await upload.batch(REVISIT, day, after=first.after, size=2)
    assert second.after == ids[3]
    last = await upload.batch(REVISIT, day, after=second.after, size=2)
    assert last.after is None and last.totals == UploadTotals(examined=1, accepted=1)
    # A day with nothing (left) to examine.
    assert await upload.batch(REVISIT, day - timedelta(days=1)) == BatchResult(after=None, totals=UploadTotals())


async def test_a_retried_step_gets_the_platforms_first_answer(sessions, cipher, steps, day) -> None:  # type: ignore[no-untyped-def]
    good, _ = await _revisit(sessions, cipher, day)
    upload = Upload(steps)
    await upload.day(REVISIT, day)
    [first] = (await _rows(sessions, REVISIT, good.visit_id)).values()
    # As if the step had died after sending and before recording the answer: the retry sends under the same key.
    async with sessions() as session, session.begin():
        await session.execute(
            delete(SupervisionRecordState).where(col(SupervisionRecordState.record_id) == good.visit_id)
        )
    await upload.day(REVISIT, day)
    [retried] = (await _rows(sessions, REVISIT, good.visit_id)).values()
    assert retried.platform_ref == first.platform_ref
    # Another run of the same day is an upload of its own.
    async with sessions() as session, session.begin():
        await session.execute(
            delete(SupervisionRecordState).where(col(SupervisionRecordState.record_id) == good.visit_id)
        )
    await Upload(steps).day(REVISIT, day)
    [fresh] = (await _rows(sessions, REVISIT, good.visit_id)).values()
    assert fresh.platform_ref != first.platform_ref


async def test_prescriptions_carry_their_review_and_fulfilment(sessions, cipher, steps, day) -> None:  # type: ignore[no-untyped-def]
    visit, number = await _revisit(sessions, cipher, day)
    _, pharmacist_id = await make_user(sessions, Role.PHARMACIST, display_name="王药师")
    completed = await make_prescription(
        sessions,
        visit,
        "completed",
        DRAFT,
        reviewed_by=pharmacist_id,
        verdict="pass",
        total_fen=12_300,
        pickup="delivery",
        updated_at=during(day),
    )
    unreviewed = await make_prescription(sessions, visit, "awaiting_payment", DRAFT, updated_at=during(day))
    await make_prescription(sessions, visit, "draft", DRAFT, updated_at=during(day))  # never signed: not sent
    async with sessions() as session, session.begin():
        session.add(
            Fulfilment(
                prescription_id=completed,
                patient_id=visit.patient_id,
                stage="signed",
                pickup="delivery",
                waybill_no="SF0001",
                signed_at=during(day, 18),
                updated_at=during(day, 18),
            )
        )
    records = {
        r.record_id: r for r in await steps.records(UploadBatch(kind=PRESCRIPTION, day=day, after=None, size=10))
    }
    assert set(records) == {completed, unreviewed}
    body = records[completed].body
    assert body["items"] == [{"herb": "党参", "dose_g": 15.0, "decoction": None}] and body["doses"] == 7
    assert body["review"]["pharmacist_id"] == pharmacist_id and body["review"]["name"] == "王药师"
    assert body["fulfilment"]["stage"] == "signed" and body["fulfilment"]["waybill_no"] == "SF0001"
    assert body["patient"]["id_card_no"] == number and body["total_fen"] == 12_300

    assert await Upload(steps).day(PRESCRIPTION, day) == UploadTotals(examined=2, accepted=1, rejected=1)
    rows = await _rows(sessions, PRESCRIPTION, completed, unreviewed)
    assert rows[completed].status == "accepted" and "药师" in (rows[unreviewed].reason or "")

    # The parcel's later change (another day) is that day's record; this day no longer has it.
    async with sessions() as session, session.begin():
        await session.execute(
            update(Fulfilment)
            .where(col(Fulfilment.prescription_id) == completed)
            .values(updated_at=during(day + timedelta(days=1)))
        )
        await session.execute(update(Prescription).where(col(Prescription.id) == unreviewed).values(stage="void"))
    ids = {
        r.record_id
        for r in await steps.records(UploadBatch(kind=PRESCRIPTION, day=day + timedelta(days=1), after=None, size=10))
    }
    assert ids == {completed}
    assert await Upload(steps).day(PRESCRIPTION, day) == UploadTotals(examined=1, accepted=1)  # voided: a new version


async def test_a_doctor_without_a_practice_licence_on_record_is_rejected(sessions, cipher, steps, day) -> None:  # type: ignore[no-untyped-def]
    visit = await make_consult_visit(sessions, stage="aborted", updated_at=during(day))
    await _identified(sessions, cipher, visit, licence=None)
    async with sessions() as session, session.begin():
        await session.execute(
            update(Visit).where(col(Visit.id) == visit.visit_id).values(abort_reason="病情需线下就诊")
        )
    assert await Upload(steps).day(REVISIT, day) == UploadTotals(examined=1, rejected=1)
    [row] = (await _rows(sessions, REVISIT, visit.visit_id)).values()
    assert "执业证书" in (row.reason or "")

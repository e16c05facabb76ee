"""Complaint steps against PostgreSQL: the escalation and the answer land on the complaint's row once, whatever a retry
repeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from activities.complaints import ComplaintActivities
from models.complaint import ComplaintResponse
from models.tables import Complaint
from tests.api.consult_helpers import make_consult_visit
from tests.api.helpers import unique


async def _complaint(sessions) -> str:  # type: ignore[no-untyped-def]
    visit = await make_consult_visit(sessions, stage="finished")
    complaint_id = unique("cmp")
    async with sessions() as session, session.begin():
        session.add(
            Complaint(
                id=complaint_id,
                patient_id=visit.patient_id,
                subject_type="visit",
                subject_id=visit.visit_id,
                category="service",
                text="医生回复很慢。",
            )
        )
    return complaint_id


async def _row(sessions, complaint_id: str) -> Complaint:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        row = await session.get(Complaint, complaint_id)
    assert row is not None
    return row


async def test_the_escalation_is_recorded_once(sessions) -> None:  # type: ignore[no-untyped-def]
    steps = ComplaintActivities(sessions)
    complaint_id = await _complaint(sessions)
    await steps.record_escalation(complaint_id)
    first = (await _row(sessions, complaint_id)).escalated_at
    assert first is not None
    await steps.record_escalation(complaint_id)
    row = await _row(sessions, complaint_id)
    assert row.escalated_at == first and row.status == "open"


async def test_the_answer_is_recorded_once_and_a_later_one_changes_nothing(sessions) -> None:  # type: ignore[no-untyped-def]
    steps = ComplaintActivities(sessions)
    complaint_id = await _complaint(sessions)
    at = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
    answer = ComplaintResponse(responder_id="u-admin", response="已向医生反馈，今后将及时回复。")
    await steps.record_response(complaint_id, answer, at)
    # A retry of the same step, and any other answer after it, leave the first answer as it was.
    await steps.record_response(complaint_id, answer, at + timedelta(seconds=5))
    await steps.record_response(
        complaint_id, ComplaintResponse(responder_id="u-other", response="另一个答复"), at + timedelta(minutes=1)
    )
    row = await _row(sessions, complaint_id)
    assert (row.status, row.response, row.responded_by, row.responded_at) == (
        "answered",
        answer.response,
        "u-admin",
        at,
    )
    assert row.escalated_at is None


async def test_steps_for_an_unknown_complaint_change_nothing(sessions) -> None:  # type: ignore[no-untyped-def]
    steps = ComplaintActivities(sessions)
    await steps.record_escalation("cmp-nobody")
    await steps.record_response(
        "cmp-nobody", ComplaintResponse(responder_id="u-admin", response="x"), datetime.now(UTC)
    )
    async with sessions() as session:
        assert await session.get(Complaint, "cmp-nobody") is None

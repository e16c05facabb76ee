"""Aftercare steps against PostgreSQL: when the refill reminder is due (in the daytime, before the course ends),
whether a renewal made it unnecessary, and the adverse reaction read model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from activities.aftercare import AftercareActivities, in_daytime, refill_time
from models.aftercare import (
    AdverseReactionInput,
    AdverseReactionResponse,
    AdverseReactionState,
    ReactionAction,
    ReactionSeverity,
    ReactionStage,
)
from models.common import HOSPITAL_TZ
from models.fulfilment import RefillInput
from models.tables import AdverseReactionReport, Fulfilment, Prescription
from tests.api.consult_helpers import make_consult_visit, make_prescription
from tests.workflows.test_prescription import DRAFT

DAY = timedelta(days=1)


def beijing(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=HOSPITAL_TZ)


def test_reminders_fall_in_the_daytime_before_the_course_ends() -> None:
    assert in_daytime(beijing(10, 7, 30)) == beijing(10, 9)
    assert in_daytime(beijing(10, 21)) == beijing(11, 9)
    assert in_daytime(beijing(10, 14)) == beijing(10, 14)
    # Seven days from a sign-off at 15:00, two days ahead: day 5 at 15:00.
    remind, ends = refill_time(beijing(1, 15), 7, 2 * DAY)
    assert (remind, ends) == (beijing(6, 15), beijing(8, 15))
    # A three-day course is reminded half-way (day 2 at 20:00), and that being night, the next morning.
    assert refill_time(beijing(1, 8), 3, 2 * DAY)[0] == beijing(3, 9)


async def _prescription(sessions, **extra) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    visit = await make_consult_visit(sessions)
    rx_id = await make_prescription(sessions, visit, "completed", DRAFT, **extra)
    async with sessions() as session, session.begin():
        session.add(Fulfilment(prescription_id=rx_id, patient_id=visit.patient_id, stage="signed", pickup="hospital"))
    return rx_id, visit.patient_id


async def test_the_plan_names_the_doctor_and_disease_and_is_recorded(sessions) -> None:  # type: ignore[no-untyped-def]
    rx_id, patient_id = await _prescription(sessions)
    signed_at = beijing(1, 15).astimezone(UTC)
    plan = await AftercareActivities(sessions, 2 * 24 * 3600).plan_refill(
        RefillInput(prescription_id=rx_id, patient_id=patient_id, signed_at=signed_at)
    )
    assert (plan.remind_at, plan.course_ends_at) == (beijing(6, 15), beijing(8, 15))  # DRAFT: 7 剂, one a day
    assert (plan.doctor_name, plan.disease_name) == ("李医生", "胃脘痛")
    async with sessions() as session:
        row = await session.get(Fulfilment, rx_id)
    assert row is not None and row.refill_remind_at == beijing(6, 15)


async def test_a_renewal_in_progress_makes_the_reminder_unnecessary_a_void_one_does_not(sessions) -> None:  # type: ignore[no-untyped-def]
    steps = AftercareActivities(sessions, 0)
    source, _ = await _prescription(sessions)
    assert await steps.refill_skipped(source) is None
    renewal, _ = await _prescription(sessions, renewed_from=source)
    async with sessions() as session, session.begin():
        (await session.get(Prescription, renewal)).stage = "void"  # type: ignore[union-attr]
    assert await steps.refill_skipped(source) is None
    async with sessions() as session, session.begin():
        (await session.get(Prescription, renewal)).stage = "awaiting_review"  # type: ignore[union-attr]
    assert await steps.refill_skipped(source) == f"已续方（处方 {renewal}）"


async def test_the_report_is_recorded_then_answered(sessions) -> None:  # type: ignore[no-untyped-def]
    steps = AftercareActivities(sessions, 0)
    rx_id, patient_id = await _prescription(sessions)
    report = AdverseReactionInput(
        report_id=f"{rx_id}-adr1",
        prescription_id=rx_id,
        patient_id=patient_id,
        doctor_id="doc-x",
        severity=ReactionSeverity.MODERATE,
        symptoms="皮肤瘙痒，起红疹",
        response_sla_s=60,
    )
    state = AdverseReactionState(
        report_id=report.report_id, prescription_id=rx_id, stage=ReactionStage.OPEN, severity=report.severity
    )
    await steps.record_adverse_reaction(report, state)
    await steps.record_adverse_reaction(report, state)  # a retried step
    answered = state.model_copy(
        update={
            "stage": ReactionStage.RESPONDED,
            "response": AdverseReactionResponse(pharmacist_id="ph-1", action=ReactionAction.STOP, advice="停药观察"),
            "responded_at": datetime.now(UTC),
        }
    )
    await steps.record_adverse_reaction(report, answered)
    async with sessions() as session:
        row = await session.get(AdverseReactionReport, report.report_id)
    assert row is not None
    assert (row.symptoms, row.severity, row.stage) == ("皮肤瘙痒，起红疹", "moderate", "responded")
    assert (row.responded_by, row.response_action, row.response_advice) == ("ph-1", "stop", "停药观察")

"""After the medicine reaches the patient (8.3.9.4): when to remind them to renew, and the adverse reaction reports'
read model."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.errors import business_error
from models.aftercare import AdverseReactionInput, AdverseReactionState
from models.common import HOSPITAL_TZ
from models.fulfilment import RefillInput, RefillPlan
from models.prescription import PrescriptionDraft, RxStage
from models.tables import AdverseReactionReport, Disease, Doctor, Fulfilment, Prescription, Visit

# Reminders go out in the daytime, Beijing time.
DAY_STARTS = time(9, 0)
DAY_ENDS = time(20, 0)


def course_days(draft: PrescriptionDraft) -> int:
    """The prescribed days; without them, one 剂 a day."""
    return draft.days or draft.doses


def in_daytime(moment: datetime) -> datetime:
    """`moment`, or the next 09:00 in Beijing when it falls at night."""
    local = moment.astimezone(HOSPITAL_TZ)
    if local.time() < DAY_STARTS:
        return datetime.combine(local.date(), DAY_STARTS, HOSPITAL_TZ)
    if local.time() >= DAY_ENDS:
        return datetime.combine(local.date() + timedelta(days=1), DAY_STARTS, HOSPITAL_TZ)
    return moment


def refill_time(signed_at: datetime, days: int, lead: timedelta) -> tuple[datetime, datetime]:
    """(when to remind, when the course ends): `lead` before the end, but never earlier than half-way through."""
    course = timedelta(days=days)
    ends = signed_at + course
    return in_daytime(ends - min(lead, course / 2)), ends


class AftercareActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], refill_lead_s: int) -> None:
        self._sessions = sessions
        self._lead = timedelta(seconds=refill_lead_s)

    @activity.defn
    async def plan_refill(self, refill: RefillInput) -> RefillPlan:
        async with self._sessions() as session, session.begin():
            rx = await session.get(Prescription, refill.prescription_id)
            if rx is None:
                raise business_error("RX_NOT_FOUND", "处方不存在")
            remind_at, ends = refill_time(
                refill.signed_at, course_days(PrescriptionDraft.model_validate(rx.draft)), self._lead
            )
            names = (
                await session.execute(
                    select(col(Doctor.name), col(Disease.name))
                    .select_from(Visit)
                    .join(Doctor, col(Doctor.id) == col(Visit.doctor_id))
                    .join(Disease, col(Disease.code) == col(Visit.disease_code))
                    .where(col(Visit.id) == rx.visit_id)
                )
            ).first()
            await session.execute(
                update(Fulfilment)
                .where(col(Fulfilment.prescription_id) == refill.prescription_id)
                .values(refill_remind_at=remind_at)
            )
        doctor, disease = names if names is not None else ("", "")
        return RefillPlan(remind_at=remind_at, course_ends_at=ends, doctor_name=doctor, disease_name=disease)

    @activity.defn
    async def refill_skipped(self, prescription_id: str) -> str | None:
        """Why the reminder is no longer needed (it was renewed already), or None when it still is."""
        async with self._sessions() as session:
            renewal = await session.scalar(
                select(col(Prescription.id)).where(
                    col(Prescription.renewed_from) == prescription_id, col(Prescription.stage) != RxStage.VOID.value
                )
            )
        return f"已续方（处方 {renewal}）" if renewal else None

    @activity.defn
    async def record_adverse_reaction(self, report: AdverseReactionInput, state: AdverseReactionState) -> None:
        values = {
            "stage": state.stage.value,
            "overdue": state.overdue,
            "responded_by": state.response.pharmacist_id if state.response else None,
            "response_action": state.response.action.value if state.response else None,
            "response_advice": state.response.advice if state.response else None,
            "responded_at": state.responded_at,
            "updated_at": datetime.now(HOSPITAL_TZ),
        }
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(AdverseReactionReport)
                .values(
                    id=report.report_id,
                    prescription_id=report.prescription_id,
                    patient_id=report.patient_id,
                    severity=report.severity.value,
                    symptoms=report.symptoms,
                    began_at=report.began_at,
                    **values,
                )
                .on_conflict_do_update(index_elements=["id"], set_=values)
            )

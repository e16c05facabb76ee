"""Schedule change steps (停诊/替诊): the schedule's new status, its slots, and which visits must hear of it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.errors import business_error
from models.schedule_change import AffectedVisit, ChangeKind, ChangeStatus, ScheduleChangeInput
from models.tables import ScheduleChange

# A leave may follow a substitution (the substitute falls ill too); a schedule is substituted only once.
_CHANGEABLE = {ChangeKind.LEAVE: ["published", "substituted"], ChangeKind.SUBSTITUTION: ["published"]}
_NEW_STATUS = {ChangeKind.LEAVE: "cancelled", ChangeKind.SUBSTITUTION: "substituted"}

_CHANGE_SCHEDULE = text(
    """
    UPDATE schedules
       SET status = :status, substitute_doctor_id = coalesce(:substitute_doctor_id, substitute_doctor_id),
           updated_at = now()
     WHERE id = :schedule_id AND status = ANY(:changeable) AND ends_at > now()
    RETURNING id
    """
)

_SCHEDULE_NOW = text("SELECT status, ends_at > now() AS upcoming FROM schedules WHERE id = :schedule_id")

# Nobody can take a free slot of a cancelled session any more; held and booked ones go with their visits.
_CLOSE_FREE_SLOTS = text(
    """
    UPDATE slots SET status = 'closed'
     WHERE schedule_id = :schedule_id AND (status = 'open' OR (status = 'held' AND held_until < now()))
    """
)

# The substitute takes the rest of the session: the free slots and those of visits not yet seen (the Visit flows
# follow); a consult already under way or over stays with its doctor.
_HAND_OVER_SLOTS = text(
    """
    UPDATE slots s SET doctor_id = :substitute_doctor_id
     WHERE s.schedule_id = :schedule_id
       AND NOT EXISTS (SELECT 1 FROM visits v
                        WHERE v.id = s.visit_id AND v.stage NOT IN ('awaiting_payment', 'waiting_doctor'))
    """
)

# Read from the slots, not the visits table: a booking that just took its slot may not have its visit row yet.
_AFFECTED = text(
    """
    SELECT s.visit_id, s.id AS slot_id, s.patient_id
      FROM slots s LEFT JOIN visits v ON v.id = s.visit_id
     WHERE s.schedule_id = :schedule_id AND s.visit_id IS NOT NULL
       AND (v.id IS NULL OR v.stage IN ('awaiting_payment', 'waiting_doctor'))
     ORDER BY s.starts_at, s.id
    """
)


class ScheduleChangeActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def record_change(self, change: ScheduleChangeInput) -> list[AffectedVisit]:
        """Change the schedule and its slots and list the visits to tell, in one transaction. A retry after a
        commit whose answer was lost finds its own change row and only lists the visits again."""
        params: dict[str, Any] = {
            "schedule_id": change.schedule_id,
            "substitute_doctor_id": change.substitute_doctor_id,
        }
        async with self._sessions() as session, session.begin():
            if await session.get(ScheduleChange, change.change_id) is None:
                await self._change_schedule(session, change, params)
            affected = [
                AffectedVisit(visit_id=row.visit_id, slot_id=row.slot_id, patient_id=row.patient_id)
                for row in await session.execute(_AFFECTED, params)
            ]
            await session.execute(
                insert(ScheduleChange)
                .values(
                    id=change.change_id,
                    schedule_id=change.schedule_id,
                    kind=change.kind.value,
                    substitute_doctor_id=change.substitute_doctor_id,
                    reason=change.reason,
                    requested_by=change.requested_by,
                    status=ChangeStatus.IN_PROGRESS.value,
                    affected_visits=len(affected),
                    created_at=datetime.now(UTC),
                )
                .on_conflict_do_update(index_elements=["id"], set_={"affected_visits": len(affected)})
            )
        return affected

    async def _change_schedule(
        self, session: AsyncSession, change: ScheduleChangeInput, params: dict[str, Any]
    ) -> None:
        changed = (
            await session.execute(
                _CHANGE_SCHEDULE,
                {**params, "status": _NEW_STATUS[change.kind], "changeable": _CHANGEABLE[change.kind]},
            )
        ).scalar()
        if changed is None:
            schedule = (await session.execute(_SCHEDULE_NOW, params)).first()
            if schedule is not None and not schedule.upcoming:
                raise business_error("SCHEDULE_OVER", "该排班的出诊时间已结束，不能再停诊或替诊")
            raise business_error("SCHEDULE_ALREADY_CHANGED", "该排班已停诊或已替诊，不能再次调整")
        if change.kind is ChangeKind.LEAVE:
            await session.execute(_CLOSE_FREE_SLOTS, params)
        else:
            await session.execute(_HAND_OVER_SLOTS, params)

    @activity.defn
    async def finish_change(self, change_id: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(ScheduleChange)
                .where(col(ScheduleChange.id) == change_id)
                .values(status=ChangeStatus.DONE.value, finished_at=datetime.now(UTC))
            )

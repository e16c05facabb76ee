"""Database steps around review, against PostgreSQL: who is on duty (and since when nobody is), the notices to the
pharmacists on duty, and the audit row of a prescription forced through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest.mock import MagicMock

from sqlalchemy import select, update
from sqlmodel import col

from activities.duty import DutyActivities
from activities.notices import NoticeActivities
from activities.prescriptions import FORCED_ACTION, PrescriptionActivities
from core.crypto.sm import FieldCipher
from models.common import Channel, Role
from models.duty import ON_DUTY_PHARMACISTS
from models.notify import Notice
from models.prescription import ForcedThrough, PrescriptionInput, PrescriptionState, RxStage
from models.tables import AuditEvent, Doctor, Notification, PharmacistDuty, Prescription
from tests.api.consult_helpers import make_consult_visit
from tests.api.helpers import make_user, unique
from tests.workflows.test_prescription import DRAFT


class _Notifier:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(
        self, *, idempotency_key: str, channel: Channel, phone: str | None, user_id: str, title: str, body: str
    ) -> str:
        self.sent.append(user_id)
        return idempotency_key


async def _everyone_off(sessions) -> None:
    # The database is shared by the session: start from nobody on duty.
    async with sessions() as session, session.begin():
        await session.execute(
            update(PharmacistDuty).where(col(PharmacistDuty.ended_at).is_(None)).values(ended_at=datetime.now(UTC))
        )


async def test_duty_status_counts_who_is_on_duty_and_dates_a_gap(sessions) -> None:
    steps = DutyActivities(sessions)
    await _everyone_off(sessions)
    _, pharmacist_id = await make_user(sessions, Role.PHARMACIST)
    assert pharmacist_id is not None
    async with sessions() as session, session.begin():
        session.add(PharmacistDuty(pharmacist_id=pharmacist_id))
    opened_at = datetime.now(UTC) - timedelta(hours=2)
    assert (await steps.duty_status(opened_at)).model_dump() == {"on_duty": 1, "uncovered_since": None}

    signed_out = datetime.now(UTC)
    async with sessions() as session, session.begin():
        await session.execute(
            update(PharmacistDuty).where(col(PharmacistDuty.pharmacist_id) == pharmacist_id).values(ended_at=signed_out)
        )
    gap = await steps.duty_status(opened_at)
    assert gap.on_duty == 0 and gap.uncovered_since == signed_out
    # A sign-out before today's opening does not make today's gap older than the opening.
    later_opening = signed_out + timedelta(minutes=1)
    assert (await steps.duty_status(later_opening)).uncovered_since == later_opening


async def test_notices_to_the_pharmacists_on_duty_reach_only_them(sessions, settings) -> None:
    await _everyone_off(sessions)
    on_user, on_id = await make_user(sessions, Role.PHARMACIST)
    off_user, _ = await make_user(sessions, Role.PHARMACIST)
    assert on_id is not None
    async with sessions() as session, session.begin():
        session.add(PharmacistDuty(pharmacist_id=on_id))
    notifier = _Notifier()
    notices = NoticeActivities(sessions, FieldCipher(settings.pii_key, settings.blind_index_key), notifier)
    notice = Notice(
        key=unique("rx-overdue"),
        user_ref=ON_DUTY_PHARMACISTS,
        template="rx_review_overdue",
        params={"prescription_id": "rx-1"},
    )
    assert await notices.send_notice(notice) == 1
    assert notifier.sent == [on_user] and off_user not in notifier.sent
    async with sessions() as session:
        inbox = (
            (await session.execute(select(Notification).where(col(Notification.user_id) == on_user))).scalars().all()
        )
    assert [n.body for n in inbox] == ["处方 rx-1 已超过审方时限仍未审核。"]
    await _everyone_off(sessions)


async def test_a_forced_prescription_is_audited_once_per_forcing(sessions, settings) -> None:
    visit = await make_consult_visit(sessions)
    rx_id = f"{visit.visit_id}-rx1"
    async with sessions() as session, session.begin():
        session.add(
            Prescription(
                id=rx_id,
                visit_id=visit.visit_id,
                patient_id=visit.patient_id,
                doctor_id=visit.doctor_id,
                stage="awaiting_review",
                draft=DRAFT.model_dump(mode="json"),
            )
        )
    steps = PrescriptionActivities(sessions, MagicMock(), MagicMock(), MagicMock(), MagicMock())
    forced = ForcedThrough(
        prescription_id=rx_id,
        revision=0,
        count=1,
        doctor_id=visit.doctor_id,
        justification="病情需要，坚持原方",
        returned_by="ph-1",
        return_reason="剂量偏大",
    )
    await steps.record_forced(forced)
    await steps.record_forced(forced)  # a retry
    await steps.record_forced(forced.model_copy(update={"count": 2, "justification": "再次确认"}))
    async with sessions() as session:
        rows = (
            (
                await session.execute(
                    select(AuditEvent)
                    .where(col(AuditEvent.action) == FORCED_ACTION, col(AuditEvent.subject_id) == rx_id)
                    .order_by(col(AuditEvent.id))
                )
            )
            .scalars()
            .all()
        )
        doctor_user = await session.scalar(select(col(Doctor.user_id)).where(col(Doctor.id) == visit.doctor_id))
    assert [(r.reason, r.detail["count"]) for r in rows] == [("病情需要，坚持原方", 1), ("再次确认", 2)]
    assert rows[0].actor_user_id == doctor_user and rows[0].subject_type == "prescription"
    assert rows[0].detail == {"revision": 0, "count": 1, "returned_by": "ph-1"}


async def test_the_read_model_keeps_the_review_queue_forced_and_renewal_columns(sessions) -> None:
    visit = await make_consult_visit(sessions)
    rx = PrescriptionInput(
        prescription_id=f"{visit.visit_id}-rx2",
        visit_id=visit.visit_id,
        patient_id=visit.patient_id,
        doctor_id=visit.doctor_id,
        draft=DRAFT,
        channel="sandbox",
        review_sla_s=600,
        pay_window_s=600,
        delivery_sla_s=3600,
        renewed_from=f"{visit.visit_id}-rx1",
    )
    submitted = datetime.now(UTC) - timedelta(minutes=3)
    state = PrescriptionState(
        prescription_id=rx.prescription_id,
        visit_id=visit.visit_id,
        stage=RxStage.AWAITING_REVIEW,
        submitted_at=submitted,
        forced=True,
        forced_reason="病情需要",
        forced_count=1,
        claimed_by="ph-1",
        claim_expires_at=submitted + timedelta(minutes=15),
    )
    steps = PrescriptionActivities(sessions, MagicMock(), MagicMock(), MagicMock(), MagicMock())
    await steps.record_prescription(rx, state, DRAFT)
    async with sessions() as session:
        row = await session.get(Prescription, rx.prescription_id)
    assert row is not None
    assert (row.renewed_from, row.submitted_at, row.forced, row.forced_reason, row.claimed_by) == (
        rx.renewed_from,
        submitted,
        True,
        "病情需要",
        "ph-1",
    )

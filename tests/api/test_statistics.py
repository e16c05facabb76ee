"""Statistics for a period (8.6.5): a week of its own far in the past, filled with known visits, sessions, bills,
refunds, prescriptions and evaluations, must come out exactly; days outside it and the permission are respected."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, date, datetime, time, timedelta

import httpx
from sqlalchemy import update
from sqlmodel import col

from models.common import HOSPITAL_TZ, Role
from models.prescription import PrescriptionDraft, RxItem
from models.tables import Bill, Doctor, Evaluation, Refund, Schedule, Slot, Visit
from tests.api.consult_helpers import ConsultVisit, make_consult_visit, make_prescription
from tests.api.helpers import login, make_user, unique
from tests.api.test_booking import assert_problem

URL = "/api/v1/admin/statistics"
DRAFT = PrescriptionDraft(diagnosis="胃痞病", items=[RxItem(herb="党参", dose_g=15)], doses=7)


def at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), HOSPITAL_TZ).astimezone(UTC)


async def _visit(sessions, day: date, stage: str, service_type: str = "video", **kwargs) -> ConsultVisit:  # type: ignore[no-untyped-def]
    """A visit booked and held on `day` (Beijing time)."""
    visit = await make_consult_visit(sessions, stage=stage, service_type=service_type, **kwargs)
    async with sessions() as session, session.begin():
        await session.execute(
            update(Visit)
            .where(col(Visit.id) == visit.visit_id)
            .values(starts_at=at(day, 9), created_at=at(day, 8), fee_fen=5000)
        )
    return visit


async def _paid_bill(sessions, visit: ConsultVisit, kind: str, amount_fen: int, paid_at: datetime) -> str:  # type: ignore[no-untyped-def]
    bill_id = unique("bill")
    async with sessions() as session, session.begin():
        session.add(
            Bill(
                id=bill_id,
                kind=kind,
                ref_id=visit.visit_id,
                patient_id=visit.patient_id,
                amount_fen=amount_fen,
                insurance_fen=1000 if kind == "registration" else 0,
                status="paid",
                channel="sandbox",
                paid_at=paid_at,
            )
        )
    return bill_id


async def test_a_week_comes_out_exactly(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    first = date(1990, 1, 1) + timedelta(days=7 * random.randrange(500))
    last = first + timedelta(days=6)
    seen = await _visit(sessions, first, "finished")
    again = await _visit(sessions, first + timedelta(days=2), "finished", service_type="text")
    again = await _reassign(sessions, again, seen)
    aborted = await _visit(sessions, last, "aborted")
    await _visit(sessions, last + timedelta(days=1), "finished")  # the day after: not counted

    # A session of the first doctor on the first day: two slots, one taken by the visit, one extra.
    schedule_id = unique("sch")
    async with sessions() as session, session.begin():
        disease = (await session.get(Visit, seen.visit_id)).disease_code  # type: ignore[union-attr]
        session.add(
            Schedule(
                id=schedule_id,
                doctor_id=seen.doctor_id,
                day=first,
                starts_at=at(first, 8),
                ends_at=at(first, 12),
                slot_minutes=15,
                capacity=2,
                fee_fen=5000,
                disease_code=disease,
            )
        )
        await session.flush()
        slot_id = (await session.get(Visit, seen.visit_id)).slot_id  # type: ignore[union-attr]
        await session.execute(
            update(Slot).where(col(Slot.id) == slot_id).values(schedule_id=schedule_id, visit_id=seen.visit_id)
        )
        session.add(
            Slot(
                id=unique("slot"),
                schedule_id=schedule_id,
                doctor_id=seen.doctor_id,
                starts_at=at(first, 10),
                ends_at=at(first, 10) + timedelta(minutes=15),
                fee_fen=5000,
                disease_code=disease,
                is_extra=True,
            )
        )

    registration = await _paid_bill(sessions, seen, "registration", 5000, at(first, 8))
    await _paid_bill(sessions, seen, "prescription", 12_300, at(first, 11))
    await _paid_bill(sessions, aborted, "registration", 5000, at(last + timedelta(days=1), 1))  # outside
    async with sessions() as session, session.begin():
        session.add(
            Refund(
                id=unique("refund"),
                bill_id=registration,
                amount_fen=2000,
                reason="部分退费",
                requested_by="u-x",
                status="succeeded",
                finished_at=at(first, 20),
            )
        )
    await make_prescription(sessions, seen, "completed", DRAFT, created_at=at(first, 10))
    await make_prescription(sessions, again, "void", DRAFT, created_at=at(first, 10), forced=True)
    await make_prescription(sessions, again, "draft", DRAFT, created_at=at(first, 10))
    async with sessions() as session, session.begin():
        for visit, ratings, handling in ((seen, (5, 4, 5), "none"), (again, (2, 4, 4), "pending")):
            session.add(
                Evaluation(
                    id=unique("ev"),
                    visit_id=visit.visit_id,
                    patient_id=visit.patient_id,
                    doctor_id=seen.doctor_id,
                    department_id=(await _department(session, seen.doctor_id)),
                    doctor_rating=ratings[0],
                    department_rating=ratings[1],
                    hospital_rating=ratings[2],
                    handling=handling,
                    created_at=at(first, 12),
                )
            )

    admin_user, _ = await make_user(sessions, Role.ADMIN)
    answer = await api.get(
        URL, params={"since": first.isoformat(), "until": last.isoformat()}, headers=await login(api, admin_user)
    )
    assert answer.status_code == 200, answer.text
    stats = answer.json()
    assert (stats["since"], stats["until"]) == (first.isoformat(), last.isoformat())
    assert stats["bookings"] == {
        "total": 3,
        "by_stage": {"finished": 2, "aborted": 1},
        "by_service_type": {"video": 2, "text": 1},
        "fee_fen": 15_000,
    }
    assert stats["visits"] == {"total": 3, "by_stage": {"finished": 2, "aborted": 1}}
    assert stats["sessions"] == [
        {
            "doctor_id": seen.doctor_id,
            "doctor": "李医生",
            "sessions": 1,
            "changed": 0,
            "slots": 2,
            "taken": 1,
            "extra": 1,
        }
    ]
    assert stats["finance"] == {
        "paid_bills": 2,
        "paid_fen": 17_300,
        "paid_fen_by_kind": {"registration": 5000, "prescription": 12_300},
        "insurance_fen": 1000,
        "refunds": 1,
        "refunded_fen": 2000,
    }
    assert stats["prescriptions"] == {
        "total": 3,
        "by_stage": {"completed": 1, "void": 1, "draft": 1},
        "forced": 1,
        "renewals": 0,
        "received": 0,
        "adverse_reactions": 0,
    }
    assert stats["evaluations"] == {
        "count": 2,
        "doctor_rating": 3.5,
        "department_rating": 4.0,
        "hospital_rating": 4.5,
        "low": 1,
        "pending": 1,
        "hidden": 0,
    }
    doctors = {d["doctor_id"]: d for d in stats["doctors"]}
    assert doctors[seen.doctor_id] == {
        "doctor_id": seen.doctor_id,
        "name": "李医生",
        "visits": 2,
        "finished": 2,
        "prescriptions": 2,
        "evaluations": 2,
        "rating": 3.5,
    }
    assert doctors[aborted.doctor_id]["finished"] == 0 and doctors[aborted.doctor_id]["visits"] == 1
    assert sum(d["visits"] for d in stats["departments"]) == 3
    assert sum(d["visits"] for d in stats["diseases"]) == 3 and {d["name"] for d in stats["diseases"]} == {"胃脘痛"}
    assert stats["patients"] == {"registered": 0, "verified": 0, "seen": 3}


async def _reassign(sessions, visit: ConsultVisit, to: ConsultVisit) -> ConsultVisit:  # type: ignore[no-untyped-def]
    """Make `visit` one of the doctor of `to`."""
    async with sessions() as session, session.begin():
        await session.execute(update(Visit).where(col(Visit.id) == visit.visit_id).values(doctor_id=to.doctor_id))
    return dataclasses.replace(visit, doctor_id=to.doctor_id, doctor_user=to.doctor_user)


async def _department(session, doctor_id: str) -> str:  # type: ignore[no-untyped-def]
    doctor = await session.get(Doctor, doctor_id)
    return doctor.department_id


async def test_period_and_permission(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    admin = await login(api, admin_user)
    default = await api.get(URL, headers=admin)
    assert default.status_code == 200
    today = datetime.now(HOSPITAL_TZ).date()
    assert (default.json()["since"], default.json()["until"]) == (
        (today - timedelta(days=30)).isoformat(),
        today.isoformat(),
    )
    assert_problem(
        await api.get(URL, params={"since": "2026-02-01", "until": "2026-01-01"}, headers=admin), 422, "INVALID_PERIOD"
    )
    assert_problem(
        await api.get(URL, params={"since": "2020-01-01", "until": "2026-01-01"}, headers=admin), 422, "INVALID_PERIOD"
    )
    assert (await api.get(URL, params={"since": "soon"}, headers=admin)).status_code == 422
    for role in (Role.DOCTOR, Role.PHARMACIST, Role.FINANCE, Role.PATIENT):
        user, _ = await make_user(sessions, role)
        assert_problem(await api.get(URL, headers=await login(api, user)), 403, "FORBIDDEN")
    assert (await api.get(URL)).status_code == 401

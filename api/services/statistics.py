"""Statistics for a period of Beijing days (数据统计分析, 8.6.5): bookings, visits, departments (专科门诊), doctors'
sessions (出诊), evaluations, money, prescriptions and fulfilment, doctors, patients and diseases.

Each figure is one aggregate query over the read models; money is integer fen. What falls in the period: a booking
by when it was made, a visit by when its slot starts, a session by its day, a bill by when it was paid, a refund by
when it was completed, a prescription by when it was created, an evaluation by when it was written.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas.statistics import (
    BookingStats,
    DepartmentStats,
    DiseaseStats,
    DoctorStats,
    EvaluationStats,
    FinanceStats,
    PatientStats,
    PrescriptionStats,
    SessionStats,
    Statistics,
    VisitStats,
)
from models.common import hospital_days

_BOOKINGS = """
    SELECT v.stage, s.service_type, count(*) AS n, sum(v.fee_fen) AS fee_fen
    FROM visits v JOIN slots s ON s.id = v.slot_id
    WHERE v.created_at >= :start AND v.created_at < :end
    GROUP BY v.stage, s.service_type
"""
_VISITS = """
    SELECT v.stage, d.department_id, dep.name AS department, v.doctor_id, d.name AS doctor, v.disease_code,
           dis.name AS disease, count(*) AS n, count(DISTINCT v.patient_id) AS patients
    FROM visits v
    JOIN doctors d ON d.id = v.doctor_id
    JOIN departments dep ON dep.id = d.department_id
    JOIN diseases dis ON dis.code = v.disease_code
    WHERE v.starts_at >= :start AND v.starts_at < :end
    GROUP BY v.stage, d.department_id, dep.name, v.doctor_id, d.name, v.disease_code, dis.name
"""
_SESSIONS = """
    SELECT sc.doctor_id, d.name AS doctor, count(DISTINCT sc.id) AS sessions,
           count(DISTINCT sc.id) FILTER (WHERE sc.status <> 'published') AS changed,
           count(sl.id) AS slots, count(sl.id) FILTER (WHERE sl.visit_id IS NOT NULL) AS taken,
           count(sl.id) FILTER (WHERE sl.is_extra) AS extra
    FROM schedules sc
    JOIN doctors d ON d.id = sc.doctor_id
    LEFT JOIN slots sl ON sl.schedule_id = sc.id
    WHERE sc.day >= :first AND sc.day <= :last
    GROUP BY sc.doctor_id, d.name
    ORDER BY sc.doctor_id
"""
_EVALUATIONS = """
    SELECT count(*) AS n, round(avg(doctor_rating), 2) AS doctor, round(avg(department_rating), 2) AS department,
           round(avg(hospital_rating), 2) AS hospital, count(*) FILTER (WHERE handling <> 'none') AS low,
           count(*) FILTER (WHERE handling = 'pending') AS pending, count(*) FILTER (WHERE visibility = 'hidden') AS hidden
    FROM evaluations WHERE created_at >= :start AND created_at < :end
"""
_DOCTOR_RATINGS = """
    SELECT doctor_id, count(*) AS n, round(avg(doctor_rating), 2) AS rating
    FROM evaluations WHERE created_at >= :start AND created_at < :end GROUP BY doctor_id
"""
_PAID = """
    SELECT kind, count(*) AS n, sum(amount_fen) AS amount_fen, sum(insurance_fen) AS insurance_fen
    FROM bills WHERE paid_at >= :start AND paid_at < :end GROUP BY kind
"""
_REFUNDED = """
    SELECT count(*) AS n, coalesce(sum(amount_fen), 0) AS amount_fen
    FROM refunds WHERE status = 'succeeded' AND finished_at >= :start AND finished_at < :end
"""
_PRESCRIPTIONS = """
    SELECT rx.stage, rx.doctor_id, count(*) AS n, count(*) FILTER (WHERE rx.forced) AS forced,
           count(*) FILTER (WHERE rx.renewed_from IS NOT NULL) AS renewals
    FROM prescriptions rx WHERE rx.created_at >= :start AND rx.created_at < :end
    GROUP BY rx.stage, rx.doctor_id
"""
_FULFILMENT = """
    SELECT count(*) FILTER (WHERE signed_at >= :start AND signed_at < :end) AS signed,
           (SELECT count(*) FROM adverse_reaction_reports WHERE reported_at >= :start AND reported_at < :end) AS reactions
    FROM fulfilments
"""
_PATIENTS = """
    SELECT (SELECT count(*) FROM patients WHERE created_at >= :start AND created_at < :end) AS registered,
           (SELECT count(*) FROM patients WHERE verified_at >= :start AND verified_at < :end) AS verified
"""

_FINISHED = "finished"


async def _rows(session: AsyncSession, sql: str, params: dict[str, Any]) -> list[Any]:
    return list((await session.execute(text(sql), params)).mappings())


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


async def period(session: AsyncSession, first: date, last: date) -> Statistics:
    start, end = hospital_days(first, last)
    params: dict[str, Any] = {"start": start, "end": end, "first": first, "last": last}

    bookings = BookingStats()
    for row in await _rows(session, _BOOKINGS, params):
        bookings.total += row["n"]
        bookings.by_stage[row["stage"]] = bookings.by_stage.get(row["stage"], 0) + row["n"]
        bookings.by_service_type[row["service_type"]] = bookings.by_service_type.get(row["service_type"], 0) + row["n"]
        bookings.fee_fen += row["fee_fen"] or 0

    visits = VisitStats()
    departments: dict[str, DepartmentStats] = {}
    doctors: dict[str, DoctorStats] = {}
    diseases: dict[str, DiseaseStats] = {}
    for row in await _rows(session, _VISITS, params):
        finished = row["n"] if row["stage"] == _FINISHED else 0
        visits.total += row["n"]
        visits.by_stage[row["stage"]] = visits.by_stage.get(row["stage"], 0) + row["n"]
        department = departments.setdefault(
            row["department_id"], DepartmentStats(department_id=row["department_id"], name=row["department"])
        )
        doctor = doctors.setdefault(row["doctor_id"], DoctorStats(doctor_id=row["doctor_id"], name=row["doctor"]))
        disease = diseases.setdefault(row["disease_code"], DiseaseStats(code=row["disease_code"], name=row["disease"]))
        for figures in (department, doctor, disease):
            figures.visits += row["n"]
            figures.finished += finished

    prescriptions = PrescriptionStats()
    for row in await _rows(session, _PRESCRIPTIONS, params):
        prescriptions.total += row["n"]
        prescriptions.by_stage[row["stage"]] = prescriptions.by_stage.get(row["stage"], 0) + row["n"]
        prescriptions.forced += row["forced"]
        prescriptions.renewals += row["renewals"]
        if row["doctor_id"] in doctors and row["stage"] != "draft":
            doctors[row["doctor_id"]].prescriptions += row["n"]
    [fulfilment] = await _rows(session, _FULFILMENT, params)
    prescriptions.received, prescriptions.adverse_reactions = fulfilment["signed"], fulfilment["reactions"]

    [rated] = await _rows(session, _EVALUATIONS, params)
    evaluations = EvaluationStats(
        count=rated["n"],
        doctor_rating=_float(rated["doctor"]),
        department_rating=_float(rated["department"]),
        hospital_rating=_float(rated["hospital"]),
        low=rated["low"],
        pending=rated["pending"],
        hidden=rated["hidden"],
    )
    for row in await _rows(session, _DOCTOR_RATINGS, params):
        if row["doctor_id"] in doctors:
            doctors[row["doctor_id"]].evaluations = row["n"]
            doctors[row["doctor_id"]].rating = _float(row["rating"])

    finance = FinanceStats()
    for row in await _rows(session, _PAID, params):
        finance.paid_bills += row["n"]
        finance.paid_fen += row["amount_fen"]
        finance.insurance_fen += row["insurance_fen"]
        finance.paid_fen_by_kind[row["kind"]] = row["amount_fen"]
    [refunded] = await _rows(session, _REFUNDED, params)
    finance.refunds, finance.refunded_fen = refunded["n"], refunded["amount_fen"]

    [people] = await _rows(session, _PATIENTS, params)
    patients = PatientStats(
        registered=people["registered"],
        verified=people["verified"],
        seen=await session.scalar(
            text("SELECT count(DISTINCT patient_id) FROM visits WHERE starts_at >= :start AND starts_at < :end"),
            params,
        )
        or 0,
    )

    return Statistics(
        since=first,
        until=last,
        bookings=bookings,
        visits=visits,
        departments=sorted(departments.values(), key=lambda d: (-d.visits, d.department_id)),
        sessions=[SessionStats.model_validate(dict(row)) for row in await _rows(session, _SESSIONS, params)],
        evaluations=evaluations,
        finance=finance,
        prescriptions=prescriptions,
        doctors=sorted(doctors.values(), key=lambda d: (-d.visits, d.doctor_id)),
        patients=patients,
        diseases=sorted(diseases.values(), key=lambda d: (-d.visits, d.code)),
    )

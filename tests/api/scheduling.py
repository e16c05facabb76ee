"""A small clinic for schedule, import and extra-slot tests: an admin, two doctors, a patient, two departments."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from api.hospital_time import hospital_today
from models.common import Role
from models.tables import AuditEvent, Doctor
from tests.api.helpers import login, make_department, make_disease, make_user

SCHEDULES = "/api/v1/admin/schedules"


@dataclass
class Clinic:
    department: str
    disease: str
    other_disease: str  # of another department
    admin_user: str
    attending: str  # 主治医师 without fees of their own: the title's fee standard applies
    attending_user: str
    chief: str  # 主任医师 offering text and video at their own fees
    chief_user: str
    patient: str
    patient_user: str
    headers: dict[str, dict[str, str]] = field(default_factory=dict)


async def make_clinic(api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]) -> Clinic:
    department = await make_department(sessions, "脾胃病科")
    other_department = await make_department(sessions, "心病科")
    disease = await make_disease(sessions, department, "胃痞病")
    other_disease = await make_disease(sessions, other_department, "心悸")
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    attending_user, attending = await make_user(
        sessions, Role.DOCTOR, department_id=department, doctor_title="主治医师", display_name="王清和"
    )
    chief_user, chief = await make_user(
        sessions, Role.DOCTOR, department_id=department, doctor_title="主任医师", display_name="李明远"
    )
    patient_user, patient = await make_user(sessions, Role.PATIENT)
    assert attending and chief and patient
    async with sessions() as session, session.begin():
        doctor = await session.get(Doctor, chief)
        assert doctor is not None
        doctor.service_fees = {"text": 6600, "video": 9900}
    clinic = Clinic(
        department,
        disease,
        other_disease,
        admin_user,
        attending,
        attending_user,
        chief,
        chief_user,
        patient,
        patient_user,
    )
    for role, user in (("admin", admin_user), ("attending", attending_user), ("chief", chief_user)):
        clinic.headers[role] = await login(api, user)
    clinic.headers["patient"] = await login(api, patient_user)
    return clinic


def in_days(n: int) -> date:
    return hospital_today() + timedelta(days=n)


def session_body(clinic: Clinic, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "doctor_id": clinic.attending,
        "day": in_days(3).isoformat(),
        "start": "08:30",
        "end": "10:00",
        "slot_minutes": 15,
        "capacity": 6,
        "service_type": "text",
        "disease_code": clinic.disease,
        "extra_cap": 2,
    }
    body.update(changes)
    return body


async def publish(api: httpx.AsyncClient, clinic: Clinic, **changes: Any) -> dict[str, Any]:
    response = await api.post(SCHEDULES, json=session_body(clinic, **changes), headers=clinic.headers["admin"])
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def audit_events(sessions: async_sessionmaker[AsyncSession], subject_id: str) -> list[AuditEvent]:
    async with sessions() as session:
        rows = await session.execute(
            select(AuditEvent).where(col(AuditEvent.subject_id) == subject_id).order_by(col(AuditEvent.id))
        )
        return list(rows.scalars())

"""Builders for API tests: accounts with their profile rows, reference data, slots, and logging in.

The database is shared by the whole test session, so every id gets a random suffix.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.consent_documents import CONSENT_DOCUMENTS
from core.passwords import hash_password
from models.common import Role
from models.tables import Consent, Department, Disease, Doctor, Notification, Patient, Pharmacist, Slot, User

PASSWORD = "Qihuang#test-2026"
# Hashing is deliberately slow (scrypt); every test account shares one hash of PASSWORD.
_PASSWORD_HASH = hash_password(PASSWORD)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def make_department(
    sessions: async_sessionmaker[AsyncSession], name: str = "脾胃病科", subject_code: str = "50.01"
) -> str:
    department_id = unique("dep")
    async with sessions() as session, session.begin():
        session.add(Department(id=department_id, name=name, description=f"{name}（测试）", subject_code=subject_code))
    return department_id


async def make_disease(sessions: async_sessionmaker[AsyncSession], department_id: str, name: str = "胃脘痛") -> str:
    code = unique("DIS")
    async with sessions() as session, session.begin():
        session.add(Disease(code=code, name=name, department_id=department_id))
    return code


async def make_user(
    sessions: async_sessionmaker[AsyncSession],
    role: Role,
    *,
    username: str | None = None,
    password: str = PASSWORD,
    display_name: str = "测试用户",
    disabled: bool = False,
    department_id: str | None = None,
    doctor_title: str = "主治医师",
) -> tuple[str, str | None]:
    """A user and, for patients, doctors and pharmacists, the linked profile row: (user_id, ref_id).

    The username defaults to the user id. A doctor without `department_id` gets a new department.
    """
    user_id = unique(f"u-{role}")
    profile_id = unique(str(role))
    if role is Role.DOCTOR and department_id is None:
        department_id = await make_department(sessions)
    async with sessions() as session, session.begin():
        session.add(
            User(
                id=user_id,
                username=username or user_id,
                password_hash=_PASSWORD_HASH if password == PASSWORD else hash_password(password),
                role=str(role),
                display_name=display_name,
                disabled=disabled,
            )
        )
        await session.flush()
        if role is Role.PATIENT:
            session.add(Patient(id=profile_id, user_id=user_id))
        elif role is Role.DOCTOR:
            assert department_id is not None
            session.add(
                Doctor(
                    id=profile_id,
                    user_id=user_id,
                    name=display_name,
                    title=doctor_title,
                    department_id=department_id,
                    his_code=unique("his"),
                )
            )
        elif role is Role.PHARMACIST:
            session.add(Pharmacist(id=profile_id, user_id=user_id, name=display_name, licence_no=unique("lic")))
    return user_id, profile_id if role in (Role.PATIENT, Role.DOCTOR, Role.PHARMACIST) else None


async def accept_all_consents(sessions: async_sessionmaker[AsyncSession], patient_id: str) -> None:
    """The patient accepts the current version of every agreement (what flow tests need before any service)."""
    async with sessions() as session, session.begin():
        for doc in CONSENT_DOCUMENTS.values():
            session.add(Consent(patient_id=patient_id, document=doc.id, version=doc.version, client_ip="127.0.0.1"))


async def make_slot(
    sessions: async_sessionmaker[AsyncSession],
    doctor_id: str,
    disease_code: str,
    starts_at: datetime,
    *,
    status: str = "open",
    held_until: datetime | None = None,
    fee_fen: int = 5000,
    minutes: int = 15,
) -> str:
    slot_id = unique("slot")
    async with sessions() as session, session.begin():
        session.add(
            Slot(
                id=slot_id,
                doctor_id=doctor_id,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(minutes=minutes),
                fee_fen=fee_fen,
                disease_code=disease_code,
                status=status,
                held_until=held_until,
            )
        )
    return slot_id


async def make_notification(
    sessions: async_sessionmaker[AsyncSession],
    user_id: str,
    title: str = "挂号成功",
    *,
    created_at: datetime | None = None,
) -> int:
    async with sessions() as session, session.begin():
        notification = Notification(
            key=unique("notice"),
            user_id=user_id,
            template="test",
            title=title,
            body=f"{title}（测试）",
            created_at=created_at or datetime.now(UTC),
        )
        session.add(notification)
        await session.flush()
        assert notification.id is not None
        return notification.id


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    """Log in through the API and return the Authorization header to send."""
    response = await client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}

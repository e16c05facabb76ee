"""The patient row behind a patient actor."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.errors import Problem
from models.tables import Patient


async def get_patient(session: AsyncSession, patient_id: str) -> Patient:
    patient = await session.get(Patient, patient_id)
    if patient is None:
        raise Problem(404, "NOT_FOUND", "患者档案不存在")
    return patient


async def store_identity(
    session: AsyncSession,
    patient_id: str,
    *,
    columns: dict[str, str | None],
    submission: str,
) -> None:
    """Replace the identity columns with a new submission; any earlier verification no longer applies."""
    await session.execute(
        update(Patient)
        .where(col(Patient.id) == patient_id)
        .values(**columns, identity_submission=submission, verified_at=None, verify_failure=None)
    )
    await session.commit()

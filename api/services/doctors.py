"""Admin changes to a doctor's public profile and fees (8.1.1.3, 8.6.1 c/d). Not committed here: the caller audits
and commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.errors import Problem
from api.schemas.doctors import DoctorPatch
from models.tables import Doctor


async def update_doctor(session: AsyncSession, doctor_id: str, patch: DoctorPatch) -> tuple[Doctor, dict[str, Any]]:
    """Apply the patch; returns the doctor and the fields that changed with their new values."""
    # The same lock publishing a schedule takes, so a session is never checked against a half-changed doctor.
    doctor = (
        await session.execute(
            select(Doctor)
            .where(col(Doctor.id) == doctor_id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if doctor is None:
        raise Problem(404, "NOT_FOUND", "请求的资源不存在", "医生不存在。")
    changes: dict[str, Any] = {}
    for name, value in patch.model_dump(exclude_unset=True).items():
        # null clears the photo; for the other fields it leaves the value as it is.
        if value is None and name != "photo_url":
            continue
        if getattr(doctor, name) != value:
            changes[name] = value
            setattr(doctor, name, value)
    return doctor, changes

"""Writing the audit trail from request handlers. Activities write theirs with the same table (models.tables.AuditEvent)."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Actor
from models.tables import AuditEvent


async def audit_read(
    session: AsyncSession, actor: Actor, subject_type: str, subject_id: str, patient_id: str, request: Request
) -> None:
    """Who read which patient's record, when and from where: committed before the answer goes out."""
    audit(
        session,
        actor,
        f"{subject_type}.read",
        subject_type,
        subject_id,
        detail={"patient_id": patient_id},
        request=request,
    )
    await session.commit()


def audit(
    session: AsyncSession,
    actor: Actor | None,
    action: str,
    subject_type: str,
    subject_id: str,
    *,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
    request: Request | None = None,
) -> None:
    """Add an audit row to the caller's transaction, so it commits (or not) with the change it describes.

    `detail` must hold ids and codes only, never names, phone or ID numbers.
    """
    session.add(
        AuditEvent(
            actor_user_id=actor.user_id if actor else None,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            reason=reason,
            detail=detail or {},
            client_ip=request.client.host if request is not None and request.client else None,
            request_id=structlog.contextvars.get_contextvars().get("request_id"),
        )
    )

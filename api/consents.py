"""Which agreements a patient has accepted, and the gate flow routers put in front of every service."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.consent_documents import CONSENT_DOCUMENTS, ConsentDocument
from api.errors import Problem
from api.schemas.me import ConsentStatus
from models.tables import Consent


async def accepted_consents(session: AsyncSession, patient_id: str) -> dict[tuple[str, str], datetime]:
    """(document, version) → when it was first accepted."""
    rows = await session.execute(
        select(col(Consent.document), col(Consent.version), col(Consent.accepted_at))
        .where(col(Consent.patient_id) == patient_id)
        .order_by(col(Consent.accepted_at).desc())
    )
    # Descending order, so the earliest acceptance of a version is the one that stays.
    return {(document, version): accepted_at for document, version, accepted_at in rows}


async def missing_consents(session: AsyncSession, patient_id: str) -> list[ConsentDocument]:
    accepted = await accepted_consents(session, patient_id)
    return [doc for doc in CONSENT_DOCUMENTS.values() if (doc.id, doc.version) not in accepted]


async def require_consents(session: AsyncSession, patient_id: str) -> None:
    """403 CONSENT_REQUIRED unless the patient accepted the current version of every document."""
    missing = await missing_consents(session, patient_id)
    if missing:
        raise consent_required(missing)


def consent_required(missing: list[ConsentDocument]) -> Problem:
    names = "、".join(f"《{doc.title}》（{doc.version} 版）" for doc in missing)
    return Problem(
        403,
        "CONSENT_REQUIRED",
        "请先阅读并同意相关协议",
        f"使用本服务前，请先阅读并同意：{names}。",
        missing=[{"document": doc.id, "version": doc.version} for doc in missing],
    )


async def record_consent(
    session: AsyncSession, patient_id: str, document: str, version: str, client_ip: str | None
) -> bool:
    """Record an acceptance of the current version; False if this version was already accepted."""
    current = CONSENT_DOCUMENTS[document]
    if version != current.version:
        raise Problem(
            409,
            "CONSENT_VERSION_OUTDATED",
            "协议版本已更新",
            f"《{current.title}》的当前版本为 {current.version}，请阅读最新版本后再同意。",
            current_version=current.version,
        )
    if (document, version) in await accepted_consents(session, patient_id):
        return False
    session.add(
        Consent(
            patient_id=patient_id,
            document=document,
            version=version,
            accepted_at=datetime.now(UTC),
            client_ip=client_ip,
        )
    )
    await session.commit()
    return True


async def consent_statuses(session: AsyncSession, patient_id: str) -> list[ConsentStatus]:
    """Each document with whether its current version is accepted."""
    accepted = await accepted_consents(session, patient_id)
    return [
        ConsentStatus(
            document=doc.id,
            title=doc.title,
            current_version=doc.version,
            accepted=(doc.id, doc.version) in accepted,
            accepted_at=accepted.get((doc.id, doc.version)),
        )
        for doc in CONSENT_DOCUMENTS.values()
    ]

"""Images and voice clips sent in a consultation put their SM3 digest on the evidence ledger (issue 7 item 6), as
staff documents and revisit uploads do, and the media row keeps where it went. A resent upload or one refused because
the chat is closed adds no entry."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from api.services.consult import MEDIA_EVIDENCE
from core.crypto.sm import sm3_hex
from core.ledger.service import EvidenceLedger
from models.tables import ConsultMedia, ConsultMessage, LedgerEntry
from tests.api.consult_helpers import make_consult_visit
from tests.api.helpers import login

Sessions = async_sessionmaker[AsyncSession]
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(2048)
AMR = b"#!AMR\n" + os.urandom(4096)


async def upload(
    api: httpx.AsyncClient, who: dict[str, str], visit_id: str, kind: str, data: bytes, content_type: str, **fields: str
) -> httpx.Response:
    return await api.post(
        f"/api/v1/visits/{visit_id}/messages",
        data={"kind": kind, **fields},
        files={"file": ("upload.bin", data, content_type)},
        headers=who,
    )


async def media_entries(sessions: Sessions) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(LedgerEntry).where(col(LedgerEntry.kind) == MEDIA_EVIDENCE)
        )
    return int(count or 0)


async def test_each_stored_image_and_voice_clip_is_on_the_ledger(api: httpx.AsyncClient, sessions: Sessions) -> None:
    chat = await make_consult_visit(sessions)
    patient, doctor = await login(api, chat.patient_user), await login(api, chat.doctor_user)
    ledger = EvidenceLedger(sessions)
    for who, kind, data, content_type in ((patient, "image", PNG, "image/png"), (doctor, "voice", AMR, "audio/amr")):
        answer = await upload(api, who, chat.visit_id, kind, data, content_type, client_msg_id=f"m-{kind}")
        assert answer.status_code == 201, answer.text
        async with sessions() as session:
            media_id = await session.scalar(
                select(col(ConsultMessage.media_id)).where(col(ConsultMessage.id) == answer.json()["id"])
            )
            stored = await session.get(ConsultMedia, media_id)
        assert stored is not None and stored.ledger_seq is not None
        entry = await ledger.entry(stored.ledger_seq)
        assert entry is not None
        # The digest of the plaintext as received, the one the download's X-Content-SM3 repeats.
        assert (entry.kind, entry.subject, entry.digest) == (MEDIA_EVIDENCE, f"consult_media:{media_id}", sm3_hex(data))

    before = await media_entries(sessions)
    resent = await upload(api, patient, chat.visit_id, "image", PNG, "image/png", client_msg_id="m-image")
    assert resent.status_code == 200, resent.text
    # A text message has no media and so no entry.
    text = await api.post(f"/api/v1/visits/{chat.visit_id}/messages", json={"body": "收到"}, headers=patient)
    assert text.status_code == 201, text.text
    assert await media_entries(sessions) == before


async def test_an_upload_to_a_closed_chat_leaves_no_entry(api: httpx.AsyncClient, sessions: Sessions) -> None:
    chat = await make_consult_visit(sessions, stage="finished", updated_at=datetime.now(UTC) - timedelta(days=2))
    patient = await login(api, chat.patient_user)
    before = await media_entries(sessions)
    refused = await upload(api, patient, chat.visit_id, "image", PNG, "image/png")
    assert refused.status_code == 409 and refused.json()["code"] == "CONSULT_CLOSED", refused.text
    assert await media_entries(sessions) == before

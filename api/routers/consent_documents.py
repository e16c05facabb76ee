"""The agreements, readable before logging in."""

from __future__ import annotations

from fastapi import APIRouter

from api.consent_documents import CONSENT_DOCUMENTS
from api.schemas.me import ConsentDocumentOut

router = APIRouter(tags=["me"])


@router.get("/consent-documents", response_model=list[ConsentDocumentOut], summary="协议文本（当前版本）")
async def consent_documents() -> list[ConsentDocumentOut]:
    return [
        ConsentDocumentOut(document=doc.id, version=doc.version, title=doc.title, text=doc.text)
        for doc in CONSENT_DOCUMENTS.values()
    ]

"""Sandbox practitioner registry: deterministic answers read from the licence number itself.

Sandbox licence numbers are 15 ASCII digits: the first is the practice category (1 临床, 2 中医, 3 口腔, 4 公共卫生),
the next eight the first registration date (YYYYMMDD). A number ending in 000000 is not registered, one ending in
999999 is revoked. Tests can also mark a number as registered to someone else (`register_to_other`).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.sandbox import recorder_for
from core.crypto.sm import sm3_hex
from core.settings import Settings
from models import idcard
from models.onboarding import PractitionerRecord

_LICENCE = re.compile(r"[0-9]{15}")
_CATEGORIES = {"1": "临床", "2": "中医", "3": "口腔", "4": "公共卫生"}


def sandbox_licence(first_registered_on: date, category: str = "2", serial: int = 1) -> str:
    """A licence number the sandbox registry knows, first registered on that day."""
    return f"{category}{first_registered_on:%Y%m%d}{serial:06d}"


class SandboxPractitionerRegistry:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._recorder = recorder_for(sessions, settings)
        self._institution = settings.hospital_name
        self.others: set[str] = set()

    def register_to_other(self, licence_no: str) -> None:
        """The number is registered, but to another person."""
        self.others.add(licence_no)

    async def lookup(self, *, idempotency_key: str, name: str, licence_no: str, id_card_no: str) -> PractitionerRecord:
        # Digests only: the call record is no place for a name or an ID number in clear.
        request = {
            "name_digest": sm3_hex(name.encode()),
            "id_card_digest": sm3_hex(idcard.normalize(id_card_no).encode()),
            "licence_no": licence_no,
        }

        async def perform(_: AsyncSession) -> dict[str, Any]:
            return self._find(licence_no).model_dump(mode="json")

        response = await self._recorder.once("registry", "lookup", idempotency_key, request, perform)
        return PractitionerRecord.model_validate(response)

    def _find(self, licence_no: str) -> PractitionerRecord:
        if not _LICENCE.fullmatch(licence_no) or licence_no[0] not in _CATEGORIES:
            return PractitionerRecord(found=False, reason="执业证书编码格式不正确，应为 15 位数字")
        try:
            first = date(int(licence_no[1:5]), int(licence_no[5:7]), int(licence_no[7:9]))
        except ValueError:
            return PractitionerRecord(found=False, reason="执业证书编码格式不正确（注册日期无效）")
        if licence_no.endswith("000000"):
            return PractitionerRecord(found=False, reason="国家医师执业注册系统中未查询到该执业证书编码")
        return PractitionerRecord(
            found=True,
            name_matches=licence_no not in self.others,
            status="revoked" if licence_no.endswith("999999") else "valid",
            practice_category=_CATEGORIES[licence_no[0]],
            practice_scope="中医专业" if licence_no[0] == "2" else None,
            institution=self._institution,
            first_registered_on=first,
        )

"""Sandbox real-name verification: format checks a real provider would also make, plus a deny set for refusals."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.sandbox import recorder_for
from core.crypto.sm import sm3_hex
from core.settings import Settings
from models import idcard
from models.identity import RealNameResult

# Chinese names: CJK ideographs (basic, extension A, extensions B and later) and the middle dot of minority names.
_NAME = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f·]{2,20}")
# [0-9] rather than \d: \d would accept full-width and other Unicode digits.
_PHONE = re.compile(r"1[0-9]{10}")


def valid_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name)) and not name.startswith("·") and not name.endswith("·")


class SandboxRealName:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._recorder = recorder_for(sessions, settings)
        # ID-card numbers the "public security registry" refuses; tests add to it with `deny`.
        self.denied: set[str] = set()

    def deny(self, id_card_no: str) -> None:
        self.denied.add(idcard.normalize(id_card_no))

    async def verify(self, *, idempotency_key: str, name: str, id_card_no: str, phone: str) -> RealNameResult:
        # Only digests are recorded: the record is not a place to keep PII in clear.
        request = {
            "name_digest": sm3_hex(name.encode()),
            "id_card_digest": sm3_hex(idcard.normalize(id_card_no).encode()),
            "phone_digest": sm3_hex(phone.encode()),
        }

        async def perform(_: AsyncSession) -> dict[str, Any]:
            return self._decide(name, id_card_no, phone).model_dump(mode="json")

        response = await self._recorder.once("realname", "verify", idempotency_key, request, perform)
        return RealNameResult.model_validate(response)

    def _decide(self, name: str, id_card_no: str, phone: str) -> RealNameResult:
        if not idcard.is_valid(id_card_no):
            return RealNameResult(matched=False, reason="身份证号码无效，请核对后重新输入")
        if not valid_name(name):
            return RealNameResult(matched=False, reason="姓名格式不正确，应为 2 至 20 个汉字")
        if not _PHONE.fullmatch(phone):
            return RealNameResult(matched=False, reason="手机号码格式不正确")
        if idcard.normalize(id_card_no) in self.denied:
            return RealNameResult(matched=False, reason="姓名与身份证号码不一致，实名认证未通过")
        return RealNameResult(matched=True)

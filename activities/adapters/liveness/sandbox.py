"""Sandbox liveness provider: the token says what the "live check" saw.

`sandbox-live:<anything>` passes (score 96), `sandbox-spoof:…` is a photo held up to the camera, `sandbox-other-face:…`
a live person who is not the ID card's holder (score 31); any other token is unknown or expired.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.sandbox import recorder_for
from core.crypto.sm import sm3_hex
from core.settings import Settings
from models import idcard
from models.identity import LivenessResult

PASS, SPOOF, OTHER_FACE = "sandbox-live:", "sandbox-spoof:", "sandbox-other-face:"


class SandboxLiveness:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._recorder = recorder_for(sessions, settings)

    async def verify(self, *, idempotency_key: str, name: str, id_card_no: str, token: str) -> LivenessResult:
        token_digest = sm3_hex(token.encode())
        request = {
            "name_digest": sm3_hex(name.encode()),
            "id_card_digest": sm3_hex(idcard.normalize(id_card_no).encode()),
            "token_digest": token_digest,
        }

        async def perform(_: AsyncSession) -> dict[str, Any]:
            return _verdict(token, f"SBLV{token_digest[:16].upper()}").model_dump(mode="json")

        response = await self._recorder.once("liveness", "verify", idempotency_key, request, perform)
        return LivenessResult.model_validate(response)


def _verdict(token: str, ref: str) -> LivenessResult:
    if token.startswith(PASS):
        return LivenessResult(passed=True, score=96, provider_ref=ref)
    if token.startswith(SPOOF):
        return LivenessResult(
            passed=False, score=0, reason="未通过活体检测，请本人在光线充足处重新检测", provider_ref=ref
        )
    if token.startswith(OTHER_FACE):
        return LivenessResult(passed=False, score=31, reason="人脸与身份证照片不一致", provider_ref=ref)
    return LivenessResult(passed=False, reason="活体检测凭证无效或已过期，请重新检测")

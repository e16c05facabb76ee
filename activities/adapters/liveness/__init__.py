"""Liveness detection and face matching (活体检测、人脸比对, 8.5.1.4) during a patient's real-name verification.

The patient's app runs the provider's live check (its SDK) and gets a one-time token; the platform sends that token
with the name and ID-card number, and the provider says whether a live person was seen and whether the face is the
ID card's holder (compared with the photo the public-security registry holds).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from models.identity import LivenessResult


@runtime_checkable
class Liveness(Protocol):
    async def verify(self, *, idempotency_key: str, name: str, id_card_no: str, token: str) -> LivenessResult:
        """The provider's verdict on the live check behind `token`; a failed check is `passed=False` with a zh-CN
        reason, not an error. The same key returns the first verdict."""
        ...

"""Real-name verification (实名认证, 8.5.1)."""

from __future__ import annotations

from pydantic import BaseModel


class RealNameResult(BaseModel):
    matched: bool
    reason: str | None = None


class IdentityCheckInput(BaseModel):
    patient_id: str
    # Digest of the submitted identity, so a retried submission finds the same verification.
    submission: str

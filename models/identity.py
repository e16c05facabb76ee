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
    # The liveness provider's token for the patient's live check, when the hospital has one configured; the flow
    # then also checks the face against the ID card's holder. Absent from flows started before liveness existed.
    liveness_token: str | None = None


class LivenessResult(BaseModel):
    """A liveness and face-match check (活体检测、人脸比对, 8.5.1.4): the face seen live is the ID card's holder."""

    passed: bool
    # The provider's similarity score, 0–100.
    score: int | None = None
    reason: str | None = None
    # The provider's reference for the check, kept with the result.
    provider_ref: str | None = None

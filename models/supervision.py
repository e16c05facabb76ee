"""Supervision data upload (8.6.4.2–8.6.4.3, 8.6.6): what the provincial supervision platform receives.

The platform (医疗服务与执业监管平台) is sent every concluded online revisit (the doctor, the patient, the record's
diagnoses) and every prescription past the doctor's signature with its flow (review, payment, dispensing), as
records keyed by their business id: a record sent again replaces the platform's copy. The `SupervisionUpload` flow
sends, for one kind and one Beijing day, the records that changed that day and differ from what the platform last
received; each record's last answer (accepted, or rejected with the platform's reason) is kept for the operators.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class SupervisionKind(StrEnum):
    REVISIT = "revisit"  # 在线复诊记录 (8.6.4.2)
    PRESCRIPTION = "prescription"  # 电子处方及其流转 (8.6.4.3)


KIND_NAMES: dict[SupervisionKind, str] = {
    SupervisionKind.REVISIT: "在线复诊记录",
    SupervisionKind.PRESCRIPTION: "电子处方及流转信息",
}


class SupervisionRecord(BaseModel):
    """One record as the platform receives it: `body` is the report, `digest` the SM3 of its canonical JSON."""

    kind: SupervisionKind
    record_id: str
    digest: str
    body: dict[str, Any]


class RecordOutcome(BaseModel):
    """The platform's answer for one record: accepted, or rejected with a code and a zh-CN reason."""

    record_id: str
    accepted: bool
    code: str | None = None
    reason: str | None = None


class UploadReceipt(BaseModel):
    """The platform's answer for one upload: its reference and one outcome per record sent."""

    platform_ref: str
    outcomes: list[RecordOutcome]


class UploadTotals(BaseModel):
    """What one day's upload found: records that changed that day, those the platform already had in that version,
    and the answers to the ones sent."""

    examined: int = 0
    unchanged: int = 0
    accepted: int = 0
    rejected: int = 0

    def add(self, other: UploadTotals) -> UploadTotals:
        return UploadTotals(
            examined=self.examined + other.examined,
            unchanged=self.unchanged + other.unchanged,
            accepted=self.accepted + other.accepted,
            rejected=self.rejected + other.rejected,
        )


class SupervisionUploadInput(BaseModel):
    kind: SupervisionKind
    day: date
    # Send every record of the day again, even those the platform has in the same version (an operator's choice
    # after the platform lost data).
    resend: bool = False
    batch_size: int = Field(default=200, ge=1, le=1000)
    requested_by: str | None = None
    # Carried over a continue-as-new: where the previous run stopped and what it had counted.
    after: str | None = None
    totals: UploadTotals | None = None


class UploadBatch(BaseModel):
    kind: SupervisionKind
    day: date
    after: str | None
    size: int
    resend: bool = False


class BatchResult(BaseModel):
    """One batch's answer; `after` is the last record id it examined (None: the day had no more)."""

    after: str | None
    totals: UploadTotals


class SupervisionUploadResult(BaseModel):
    kind: SupervisionKind
    day: date
    totals: UploadTotals
    finished_at: datetime


class DailySupervisionInput(BaseModel):
    """What the Schedule starts: both kinds, for yesterday (its late changes) and today so far (Beijing time)."""

    kinds: list[SupervisionKind] = Field(default_factory=lambda: list(SupervisionKind))

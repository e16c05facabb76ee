"""A patient's request to refund a paid prescription before its medicine leaves the pharmacy (8.4.2).

The hospital (a pharmacist or an administrator) approves or refuses; on approval the pharmacy order is withdrawn and
the whole bill is refunded along its original paths. After the medicine has left, only a special refund with a
negotiation is possible (models.billing.RefundKind.SPECIAL).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class RxRefundRequest(BaseModel):
    patient_id: str
    reason: str = Field(min_length=1, max_length=500)


class RxRefundDecision(BaseModel):
    decided_by: str  # the pharmacist's or administrator's user id
    approve: bool
    note: str = Field(default="", max_length=500)


class RxRefundStatus(StrEnum):
    PENDING = "pending"
    REJECTED = "rejected"
    # Approved, but the medicine left the pharmacy before the approval arrived: a special refund is the way now.
    TOO_LATE = "too_late"
    REFUNDED = "refunded"
    FAILED = "failed"


class RxRefundState(BaseModel):
    status: RxRefundStatus
    reason: str
    requested_at: datetime
    decided_by: str | None = None
    note: str | None = None
    refund_id: str | None = None


class DispatchStatus(BaseModel):
    """Where a paid prescription's medicine is: `left` once shipped or handed over (signed for)."""

    left: bool
    stage: str | None = None
    order_no: str | None = None
    pharmacy_id: str | None = None

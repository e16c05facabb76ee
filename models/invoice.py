"""Electronic medical receipts (医疗收费电子票据, 8.4.1): issued once a bill is paid, reversed in red (冲红) when it is
refunded in full. Amounts are fen.

`InvoiceRequest` names the payer and is PII: the activity builds it from decrypted columns right before the call; it
never travels in workflow payloads (workflows pass the bill id only).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from models.common import Fen


class InvoiceItem(BaseModel):
    name: str
    amount_fen: Fen


class InvoiceRequest(BaseModel):
    bill_id: str
    payer_name: str
    total_fen: Fen = Field(gt=0)
    items: list[InvoiceItem] = Field(min_length=1)
    # How it was paid: the 医保 parts (统筹基金, 个人账户) and what the patient paid themselves (个人自付).
    fund_fen: Fen = 0
    account_fen: Fen = 0
    self_pay_fen: Fen = 0
    paid_at: datetime


class InvoiceStatus(StrEnum):
    ISSUED = "issued"
    REVERSED = "reversed"  # a red-letter receipt cancels it


class Invoice(BaseModel):
    """An issued receipt: 票据代码 + 票据号码 identify it, the 校验码 lets anyone check it on the issuer's site."""

    bill_id: str
    invoice_code: str
    invoice_no: str
    check_code: str
    total_fen: Fen
    issued_at: datetime
    url: str
    status: InvoiceStatus = InvoiceStatus.ISSUED


class RedLetter(BaseModel):
    """The red-letter receipt (红字票据) that reverses an issued one."""

    original_code: str
    original_no: str
    invoice_code: str
    invoice_no: str
    total_fen: Fen
    issued_at: datetime


class InvoiceTask(BaseModel):
    """What the Invoice workflow does for a bill: issue its receipt, or reverse it after a full refund."""

    bill_id: str
    patient_id: str
    reverse: bool = False
    reason: str = ""


class InvoiceOutcome(InvoiceTask):
    """What an invoice step did: the receipt's number, and the red receipt's when it was reversed."""

    invoice_no: str | None = None
    red_invoice_no: str | None = None
    total_fen: Fen = 0

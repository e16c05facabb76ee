"""E-invoice (医疗收费电子票据): the fiscal receipt platform a public hospital issues its receipts through.

Every mutating call carries an idempotency key, and the platform dedupes on it: a retried activity issues (or
reverses) one receipt, never two. Reversal is by red letter (冲红): the original stays on record and a red receipt
for the same amount cancels it; reversing twice answers with the same red receipt.

Errors follow `activities.adapters.errors`: `AdapterError` is retryable, `AdapterRefusal` a business refusal
(e.g. `INVOICE_NOT_FOUND`, `INVOICE_REVERSED` for issuing against a reversed bill).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from models.invoice import Invoice, InvoiceRequest, RedLetter


@runtime_checkable
class EInvoice(Protocol):
    name: str

    async def issue(self, *, idempotency_key: str, request: InvoiceRequest) -> Invoice:
        """Issue the receipt of one paid bill. The same bill issued again under another key answers with the
        receipt already issued (one bill, one receipt)."""
        ...

    async def reverse(self, *, idempotency_key: str, invoice_code: str, invoice_no: str, reason: str) -> RedLetter:
        """Issue the red-letter receipt that cancels `invoice_code`/`invoice_no`."""
        ...

    async def query(self, *, invoice_code: str, invoice_no: str) -> Invoice:
        """The receipt as the platform holds it now (its status shows a reversal)."""
        ...

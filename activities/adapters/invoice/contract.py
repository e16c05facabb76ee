"""Contract every `EInvoice` implementation must pass.

    class TestMyInvoicing(EInvoiceContract):
        @pytest.fixture
        def adapter(self): return MyInvoicing(...)

Each test uses fresh bill numbers, so the suite can run against a shared test account of the platform.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from activities.adapters.errors import AdapterRefusal
from activities.adapters.invoice import EInvoice
from models.invoice import InvoiceItem, InvoiceRequest, InvoiceStatus


def new_request(total_fen: int = 12_345) -> InvoiceRequest:
    """A paid bill's receipt request under a fresh bill number."""
    return InvoiceRequest(
        bill_id=f"ct-{uuid.uuid4().hex[:16]}",
        payer_name="测试患者",
        total_fen=total_fen,
        items=[InvoiceItem(name="中药饮片", amount_fen=total_fen)],
        fund_fen=5_000,
        account_fen=0,
        self_pay_fen=total_fen - 5_000,
        paid_at=datetime.now(UTC),
    )


def _key() -> str:
    return f"key-{uuid.uuid4().hex}"


class EInvoiceContract:
    def test_implements_protocol(self, adapter: EInvoice) -> None:
        assert isinstance(adapter, EInvoice)
        assert adapter.name

    async def test_issue_is_idempotent_per_key_and_per_bill(self, adapter: EInvoice) -> None:
        request, key = new_request(), _key()
        first = await adapter.issue(idempotency_key=key, request=request)
        assert await adapter.issue(idempotency_key=key, request=request) == first
        # Another key for the same bill (a flow re-run) must not issue a second receipt.
        assert await adapter.issue(idempotency_key=_key(), request=request) == first
        assert first.invoice_no and first.invoice_code and first.check_code
        assert first.total_fen == request.total_fen and first.status is InvoiceStatus.ISSUED

    async def test_bills_get_receipts_of_their_own(self, adapter: EInvoice) -> None:
        one = await adapter.issue(idempotency_key=_key(), request=new_request())
        two = await adapter.issue(idempotency_key=_key(), request=new_request())
        assert (one.invoice_code, one.invoice_no) != (two.invoice_code, two.invoice_no)

    async def test_red_letter_reverses_once(self, adapter: EInvoice) -> None:
        issued = await adapter.issue(idempotency_key=_key(), request=new_request(8_800))
        key = _key()
        red = await adapter.reverse(
            idempotency_key=key, invoice_code=issued.invoice_code, invoice_no=issued.invoice_no, reason="全额退款"
        )
        assert (red.original_code, red.original_no) == (issued.invoice_code, issued.invoice_no)
        assert red.total_fen == 8_800 and red.invoice_no != issued.invoice_no
        again = await adapter.reverse(
            idempotency_key=_key(), invoice_code=issued.invoice_code, invoice_no=issued.invoice_no, reason="全额退款"
        )
        assert again == red
        held = await adapter.query(invoice_code=issued.invoice_code, invoice_no=issued.invoice_no)
        assert held.status is InvoiceStatus.REVERSED

    async def test_reversing_an_unknown_receipt_is_refused(self, adapter: EInvoice) -> None:
        with pytest.raises(AdapterRefusal) as refused:
            await adapter.reverse(idempotency_key=_key(), invoice_code="00000000", invoice_no="0000000000", reason="x")
        assert refused.value.code == "INVOICE_NOT_FOUND"

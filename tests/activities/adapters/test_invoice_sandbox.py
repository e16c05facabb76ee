"""The sandbox e-invoice platform passes the `EInvoice` contract, and two keys racing for one bill get one receipt."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from activities.adapters.invoice.contract import EInvoiceContract, new_request
from activities.adapters.invoice.sandbox import SandboxInvoice
from activities.adapters.registry import load_adapter


@pytest.fixture
def adapter(sessions, settings) -> SandboxInvoice:  # type: ignore[no-untyped-def]
    return SandboxInvoice(sessions, settings)


class TestSandboxInvoice(EInvoiceContract):
    pass


async def test_two_keys_racing_for_one_bill_issue_one_receipt(adapter: SandboxInvoice) -> None:
    request = new_request()
    first, second = await asyncio.gather(
        *(adapter.issue(idempotency_key=f"key-{uuid.uuid4().hex}", request=request) for _ in range(2))
    )
    assert first == second


def test_registered_under_the_invoice_protocol(sessions, settings) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(load_adapter("invoice", "sandbox", sessions, settings), SandboxInvoice)

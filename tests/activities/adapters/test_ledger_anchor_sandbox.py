from __future__ import annotations

import pytest

from activities.adapters.ledger_anchor.contract import LedgerAnchorContract
from activities.adapters.ledger_anchor.sandbox import SandboxLedgerAnchor


@pytest.fixture
def adapter(sessions, settings) -> SandboxLedgerAnchor:  # type: ignore[no-untyped-def]
    return SandboxLedgerAnchor(sessions, settings)


class TestSandboxLedgerAnchor(LedgerAnchorContract):
    pass

"""Contract every `LedgerAnchor` implementation must pass.

class TestMyChain(LedgerAnchorContract):
    @pytest.fixture
    def adapter(self): return MyChain(...)
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

from activities.adapters.ledger_anchor import LedgerAnchor
from models.ledger import TreeHead


def head(size: int) -> TreeHead:
    now = datetime.now(UTC)
    return TreeHead(
        size=size,
        root_hash=secrets.token_hex(32),
        signed_at=now,
        key_id=secrets.token_hex(32),
        signature=secrets.token_hex(70),
        tsa_token="30",
        tsa_hash_algorithm="sm3",
        timestamped_at=now,
    )


class LedgerAnchorContract:
    def test_implements_protocol(self, adapter: LedgerAnchor) -> None:
        assert isinstance(adapter, LedgerAnchor)
        assert adapter.chain

    async def test_published_head_reads_back_from_the_chain(self, adapter: LedgerAnchor) -> None:
        published, key = head(7), f"anchor-{uuid.uuid4().hex}"
        receipt = await adapter.publish(idempotency_key=key, head=published)
        assert await adapter.publish(idempotency_key=key, head=published) == receipt
        assert (receipt.chain, receipt.size, receipt.root_hash) == (adapter.chain, 7, published.root_hash)
        assert receipt.signature == published.signature
        assert await adapter.fetch(tx_id=receipt.tx_id) == receipt

    async def test_unknown_transaction_is_none(self, adapter: LedgerAnchor) -> None:
        assert await adapter.fetch(tx_id="0x" + secrets.token_hex(32)) is None

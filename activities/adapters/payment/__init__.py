"""A payment channel (sandbox, WeChat Pay v3, Alipay, …). Amounts are fen; every mutating call carries a key."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol, runtime_checkable

from models.billing import ChannelOrder, ChannelRefund, PaymentNotice


@runtime_checkable
class PaymentChannel(Protocol):
    name: str

    async def create_order(
        self, *, idempotency_key: str, out_trade_no: str, amount_fen: int, description: str, expires_at: datetime
    ) -> ChannelOrder: ...

    async def query_order(self, *, out_trade_no: str) -> ChannelOrder: ...

    async def close_order(self, *, idempotency_key: str, out_trade_no: str) -> ChannelOrder:
        """Close an unpaid order. If it was paid meanwhile, return it as paid rather than failing."""
        ...

    async def refund(
        self, *, idempotency_key: str, out_trade_no: str, out_refund_no: str, amount_fen: int, reason: str
    ) -> ChannelRefund: ...

    async def query_refund(self, *, out_trade_no: str, out_refund_no: str) -> ChannelRefund:
        """The refund `out_refund_no` of order `out_trade_no` (some channels look refunds up only by their order)."""
        ...

    def parse_payment_notice(self, headers: Mapping[str, str], body: bytes) -> PaymentNotice:
        """Verify and decode the channel's payment callback; raise `InvalidCallback` if it does not verify."""
        ...

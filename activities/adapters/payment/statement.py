"""The daily statement (对账单) side of a payment channel, used by reconciliation.

Every channel in this package implements `download_bill`. It is a Protocol of its own rather than a member of
`PaymentChannel`, so an integrator's channel without a statement API still takes payments; reconciliation refuses
such a channel by name.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol, runtime_checkable

from activities.adapters.errors import AdapterError
from models.billing import ChannelBillLine


class StatementNotReady(AdapterError):
    """The channel has not produced the day's statement yet (WeChat Pay and Alipay: about 10:00 the next day).

    Reconciliation waits on a durable timer and asks again, instead of retrying at once.
    """


@runtime_checkable
class StatementChannel(Protocol):
    name: str

    async def download_bill(self, *, bill_date: date) -> list[ChannelBillLine]:
        """Every payment and refund line of `bill_date` (a Beijing-time day), normalised; [] for a day without any.

        Raise `StatementNotReady` while the statement is still being made.
        """
        ...

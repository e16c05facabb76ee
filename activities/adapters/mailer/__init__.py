"""Outbound e-mail: notices to staff who have an address on record (finance's daily reconciliation result)."""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

# The refusal a recipient the mail server turns away for good raises (AdapterRefusal.code).
RECIPIENT_REFUSED = "EMAIL_RECIPIENT_REFUSED"
# The refusal of the message itself (content, size or policy), for any recipient.
MESSAGE_REFUSED = "EMAIL_MESSAGE_REFUSED"


@runtime_checkable
class Mailer(Protocol):
    async def send(self, *, idempotency_key: str, to: str, subject: str, text: str, html: str) -> str:
        """Send one e-mail to `to` with a plain-text and an HTML alternative (both UTF-8); return its Message-ID.
        The same key never sends twice. A recipient the server refuses for good raises
        `AdapterRefusal(RECIPIENT_REFUSED, …)`; a failure a later attempt may get past raises `AdapterError`."""
        ...


def message_id(idempotency_key: str, domain: str) -> str:
    """The Message-ID of the e-mail sent under `idempotency_key`: the same for every attempt, so even a copy that a
    lost answer made a retry send again reads as the same message to the receiving system."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}.qihuang@{domain}>"


def sender_domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"

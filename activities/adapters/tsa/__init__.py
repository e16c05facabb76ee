"""Trusted timestamps (RFC 3161) for prescription and record signatures and the evidence ledger's tree heads."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from asn1crypto import x509

from activities.adapters.errors import AdapterError, AdapterRefusal
from core.crypto.tsp import TimestampRejected, TimestampToken

# Failures a later attempt can get past: the TSA's clock or signer is down, or it asked us to come back.
_TRANSIENT_FAILURES = frozenset({"time_not_available", "system_failure"})


@runtime_checkable
class TimestampAuthority(Protocol):
    name: str
    # The digest this TSA is set up for; callers hash their data with it before asking for a timestamp.
    hash_algorithm: str
    # What tokens from this TSA must chain to; kept so stored tokens can be verified again later.
    trust_anchors: tuple[x509.Certificate, ...]

    async def timestamp(self, *, data_digest: bytes, hash_algorithm: str) -> TimestampToken:
        """Have `data_digest` stamped; the token returned is already verified against `trust_anchors`."""
        ...


def rejection_error(name: str, rejected: TimestampRejected) -> AdapterError | AdapterRefusal:
    """Map a TSA's refusal to a retryable AdapterError or a final AdapterRefusal."""
    if rejected.status == "waiting" or _TRANSIENT_FAILURES.intersection(rejected.failures):
        return AdapterError(f"TSA {name}: {rejected}")
    code = "TSA_" + ("_".join(rejected.failures) or rejected.status).upper()
    return AdapterRefusal(code, f"TSA {name}: {rejected}")

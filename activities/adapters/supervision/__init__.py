"""The provincial supervision platform (医疗服务与执业监管平台), as far as registering the institution goes (8.5.4).

The hospital submits its institution details; the platform's administrators approve or reject them in their own time,
so the submitter asks for the decision; once approved, the platform's institution look-up confirms the registration.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from models.institution import InstitutionFiling, InstitutionRecord, RegistrationReceipt, RegistrationStatus


@runtime_checkable
class SupervisionPlatform(Protocol):
    async def register_institution(self, *, idempotency_key: str, filing: InstitutionFiling) -> RegistrationReceipt:
        """Submit the details; the same key returns the first receipt. A filing the platform cannot accept raises
        `AdapterRefusal` with a zh-CN message."""
        ...

    async def registration_status(self, *, idempotency_key: str, platform_ref: str) -> RegistrationStatus:
        """Whether the platform has decided on the registration it gave `platform_ref`."""
        ...

    async def lookup_institution(self, *, idempotency_key: str, code: str) -> InstitutionRecord:
        """The platform's record of the institution with this number (8.5.4.3–8.5.4.4)."""
        ...

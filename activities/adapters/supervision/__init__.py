"""The provincial supervision platform (医疗服务与执业监管平台): the institution's registration (8.5.4) and the data
it supervises (8.6.6).

The hospital submits its institution details; the platform's administrators approve or reject them in their own time,
so the submitter asks for the decision; once approved, the platform's institution look-up confirms the registration.
Online revisits and prescriptions are then uploaded as records keyed by their business id (the platform's 中间表 or
service interface); the platform checks each record on its own and accepts it or says why not.

Each province publishes its own interface to its own members only; a province's adapter implements this Protocol and
passes `contract.SupervisionContract`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from models.institution import InstitutionFiling, InstitutionRecord, RegistrationReceipt, RegistrationStatus
from models.supervision import SupervisionKind, SupervisionRecord, UploadReceipt


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

    async def upload_records(
        self, *, idempotency_key: str, kind: SupervisionKind, records: list[SupervisionRecord]
    ) -> UploadReceipt:
        """Send records of one kind; each replaces the platform's copy under its id. The platform answers for every
        record on its own (accepted, or rejected with a zh-CN reason); the same key returns the first receipt. An
        upload the platform cannot take at all raises `AdapterRefusal`."""
        ...

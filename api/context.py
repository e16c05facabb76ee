"""What every request handler may reach: one `AppContext`, built by the app's lifespan and kept on `app.state.ctx`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from activities.adapters.registry import Adapters
from api.refusal_writer import RefusalWriter
from core.crypto.sm import FieldCipher
from core.settings import Settings

# Called with (patient_id, submission digest) after a patient submits their identity for real-name verification, and
# the liveness provider's token as a third argument when the hospital checks faces too (8.5.1.4).
IdentityHook = Callable[..., Awaitable[None]]


@dataclass
class AppContext:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    # The same database without the ORM, for the statements on every request's path (see `core.db.make_pool`).
    pg: asyncpg.Pool
    temporal: Client
    cipher: FieldCipher
    # The configured adapters: the API uses them only to verify callbacks and to drive the sandbox simulators.
    adapters: Adapters
    # Set by whoever wires the verification workflow; None means submissions are only stored.
    on_identity_submitted: IdentityHook | None = None
    # Refused bookings' answers, stored in batches on `pg`.
    refusals: RefusalWriter = field(init=False)

    def __post_init__(self) -> None:
        self.refusals = RefusalWriter(self.pg)

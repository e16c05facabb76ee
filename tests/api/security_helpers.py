"""Helpers for the sign-in security tests: apps with their own settings, token rows, the sandbox SMS outbox."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio.client import Client

from api.main import create_app
from core.passwords import token_digest
from core.settings import Settings
from models.tables import AccessToken, AuditEvent, SandboxCall


@asynccontextmanager
async def api_with(database_url: str, client: Client, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A separate API app (as another API process would be) on the same database, with its own settings."""
    app = create_app(Settings(database_url=database_url, **overrides), temporal_client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        yield http


def bearer(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def age_token(sessions: async_sessionmaker[AsyncSession], headers: dict[str, str], **ages: timedelta) -> None:
    """Move the token's `last_used_at` / `auth_time` into the past by the given amounts, instead of sleeping."""
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        await session.execute(
            update(AccessToken)
            .where(col(AccessToken.token_hash) == token_digest(bearer(headers)))
            .values({column: now - age for column, age in ages.items()})
        )


async def token_row(sessions: async_sessionmaker[AsyncSession], headers: dict[str, str]) -> AccessToken:
    async with sessions() as session:
        row = await session.get(AccessToken, token_digest(bearer(headers)))
        assert row is not None
        return row


async def events_about(
    sessions: async_sessionmaker[AsyncSession], subject_id: str, action_prefix: str = ""
) -> list[AuditEvent]:
    async with sessions() as session:
        rows = await session.execute(
            select(AuditEvent)
            .where(col(AuditEvent.subject_id) == subject_id, col(AuditEvent.action).startswith(action_prefix))
            .order_by(col(AuditEvent.id))
        )
        return list(rows.scalars())


async def texted_codes(sessions: async_sessionmaker[AsyncSession], user_id: str) -> list[str]:
    """The codes the sandbox notifier texted to `user_id`, oldest first."""
    async with sessions() as session:
        bodies = await session.scalars(
            select(SandboxCall.request)  # type: ignore[call-overload]
            .where(
                col(SandboxCall.system) == "notifier",
                col(SandboxCall.request)["user_id"].astext == user_id,
            )
            .order_by(col(SandboxCall.id))
        )
        return [re.search(r"\d{6}", body["body"]).group(0) for body in bodies]  # type: ignore[union-attr]

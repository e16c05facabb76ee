"""Dependencies that hand the pieces of the `AppContext` to handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.context import AppContext
from core.crypto.sm import FieldCipher
from core.settings import Settings


# All async so FastAPI calls them inline instead of handing each to a worker thread.
async def get_context(request: Request) -> AppContext:
    return request.app.state.ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_session(ctx: ContextDep) -> AsyncIterator[AsyncSession]:
    """One session per request, shared by every dependency of that request. Handlers that write commit themselves;
    anything uncommitted is rolled back when the handler returns."""
    async with ctx.sessions() as session:
        yield session


async def get_temporal(ctx: ContextDep) -> Client:
    return ctx.temporal


async def get_settings(ctx: ContextDep) -> Settings:
    return ctx.settings


async def get_cipher(ctx: ContextDep) -> FieldCipher:
    return ctx.cipher


# scope="function": the connection goes back to the pool before the response is sent, not after.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
TemporalDep = Annotated[Client, Depends(get_temporal)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CipherDep = Annotated[FieldCipher, Depends(get_cipher)]

"""An app per test with its lifespan entered (ASGITransport does not run it), bound to the session's PostgreSQL
and Temporal dev server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.main import create_app
from core.settings import Settings


@pytest_asyncio.fixture
async def app(database_url: str, engine: AsyncEngine, client: Client) -> AsyncIterator[FastAPI]:
    # `engine` is requested only so the schema is migrated before the app's own engine connects.
    app = create_app(Settings(database_url=database_url), temporal_client=client)  # type: ignore[call-arg]
    async with app.router.lifespan_context(app):
        yield app


@pytest_asyncio.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield http

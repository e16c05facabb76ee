"""Real-name verification where the hospital checks faces too (8.5.1.4): the identity is accepted only with the
liveness provider's token, which goes to the verification flow; without a provider configured the token is not asked
for and not passed on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.main import create_app
from core.settings import Settings
from models.common import Role
from tests.api.helpers import login, make_user

IDENTITY = {"name": "王小明", "id_card_no": "11010519491231002X", "phone": "13912345678"}


@pytest_asyncio.fixture
async def liveness_app(database_url: str, engine: AsyncEngine, client: Client) -> AsyncIterator[FastAPI]:
    app = create_app(Settings(database_url=database_url, adapter_liveness="sandbox"), temporal_client=client)  # type: ignore[call-arg]
    async with app.router.lifespan_context(app):
        yield app


async def test_the_token_is_required_and_passed_to_the_flow(liveness_app: FastAPI, sessions) -> None:  # type: ignore[no-untyped-def]
    started: list[tuple[object, ...]] = []

    async def start_verification(*args: object) -> None:
        started.append(args)

    liveness_app.state.ctx.on_identity_submitted = start_verification
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=liveness_app), base_url="http://testserver") as api:
        user, patient_id = await make_user(sessions, Role.PATIENT)
        headers = await login(api, user)
        missing = await api.put("/api/v1/me/identity", json=IDENTITY, headers=headers)
        assert (missing.status_code, missing.json()["code"]) == (422, "LIVENESS_REQUIRED")
        assert started == []
        accepted = await api.put(
            "/api/v1/me/identity", json={**IDENTITY, "liveness_token": "sandbox-live:abc"}, headers=headers
        )
        assert accepted.status_code == 202, accepted.text
    [(patient, submission, token)] = started
    assert (patient, token) == (patient_id, "sandbox-live:abc") and isinstance(submission, str)


async def test_without_a_provider_the_token_is_not_passed_on(app: FastAPI, api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    started: list[tuple[object, ...]] = []

    async def start_verification(*args: object) -> None:
        started.append(args)

    app.state.ctx.on_identity_submitted = start_verification
    user, _ = await make_user(sessions, Role.PATIENT)
    answer = await api.put(
        "/api/v1/me/identity", json={**IDENTITY, "liveness_token": "ignored"}, headers=await login(api, user)
    )
    assert answer.status_code == 202
    assert [len(args) for args in started] == [2]

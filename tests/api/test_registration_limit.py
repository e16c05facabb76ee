"""The public staff registration (POST /staff-applications, no sign-in) is rate-limited per client address with the
integration gateway's per-minute counter: past the limit a clean 429 problem with Retry-After, before any check or
password hash, while other addresses go on registering."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlmodel import col
from starlette.requests import Request

from api.gateway.limits import client_address
from models.tables import User
from tests.api.test_staff_applications import doctor_body

REGISTER = "/api/v1/staff-applications"


def caller(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def same_minute_for(sessions, seconds: float) -> None:  # type: ignore[no-untyped-def]
    """Wait for the next minute if the counter's current one (on the database clock) ends within `seconds`."""
    async with sessions() as session:
        left = await session.scalar(
            text("SELECT extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now())::float8")
        )
    if left < seconds:
        await asyncio.sleep(left + 0.2)


async def test_registrations_past_the_limit_from_one_address_get_429(app: FastAPI, sessions) -> None:  # type: ignore[no-untyped-def]
    limit = app.state.ctx.settings.staff_registration_per_minute
    await same_minute_for(sessions, 20)
    # Documentation addresses (RFC 5737, RFC 3849), used by no other test, so no other test's count is shared.
    async with caller(app, "203.0.113.7") as first, caller(app, "2001:db8::7") as second:
        # Refused attempts count too: probing for taken usernames and ID numbers is what the limit is for.
        for _ in range(limit - 1):
            invalid = await first.post(
                REGISTER, json={**await doctor_body(sessions), "id_card_no": "110105194912310021"}
            )
            assert invalid.status_code == 422, invalid.text
        body = await doctor_body(sessions)
        assert (await first.post(REGISTER, json=body)).status_code == 201

        late = await doctor_body(sessions)
        refused = await first.post(REGISTER, json=late)
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        problem = refused.json()
        assert (problem["status"], problem["code"]) == (429, "RATE_LIMITED")
        assert f"最多提交 {limit} 次" in problem["detail"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        async with sessions() as session:
            created = await session.scalar(
                select(func.count()).select_from(User).where(col(User.username) == late["username"])
            )
        assert created == 0

        # Another address is counted on its own.
        assert (await second.post(REGISTER, json=late)).status_code == 201


def test_client_addresses_are_counted_in_one_normalised_form() -> None:
    def address(host: str) -> str:
        return client_address(Request({"type": "http", "client": (host, 1), "headers": []}))

    assert address("2001:DB8:0:0:0:0:0:7") == address("2001:db8::7") == "2001:db8::7"
    assert address("::ffff:203.0.113.7") == "::ffff:cb00:7107"
    assert address("203.0.113.7") == "203.0.113.7"
    assert address("testclient") == "testclient"
    long = address("x" * 100)
    assert long.startswith("h:") and len(long) == 40
    assert address("x" * 100) == long and address("y" * 100) != long
    assert client_address(Request({"type": "http", "headers": []})) == "unknown"

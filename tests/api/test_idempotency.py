"""Idempotency-Key: a repeat replays the first answer; concurrent repeats wait for it; a changed request is refused."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.auth import ActorDep
from api.errors import Problem
from api.idempotency import idempotent
from models.common import Role
from tests.api.helpers import login, make_user


class Charge(BaseModel):
    amount_fen: int
    outcome: str = "ok"


class Probe:
    """A create-or-pay endpoint that counts how often its work really runs."""

    def __init__(self, app: FastAPI) -> None:
        self.calls = 0
        router = APIRouter()

        @router.post("/api/v1/_probe/charges")
        async def charge(
            body: Charge,
            request: Request,
            actor: ActorDep,
            key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
        ) -> JSONResponse:
            async def compute() -> tuple[int, dict[str, Any]]:
                self.calls += 1
                await asyncio.sleep(0.2)
                if body.outcome == "declined":
                    raise Problem(409, "PAYMENT_DECLINED", "支付被拒绝", call=self.calls)
                if body.outcome == "unavailable":
                    return 503, {"code": "CHANNEL_DOWN", "call": self.calls}
                return 201, {"charge": f"ch-{self.calls}", "amount_fen": body.amount_fen, "by": actor.user_id}

            return await idempotent(request, actor, key, compute)

        app.include_router(router)


@pytest.fixture
def probe(app: FastAPI) -> Probe:
    return Probe(app)


@pytest.fixture
async def headers(api, sessions) -> dict[str, str]:
    user_id, _ = await make_user(sessions, Role.PATIENT)
    return await login(api, user_id)


async def test_repeat_replays_the_first_answer(api, probe, headers) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await api.post("/api/v1/_probe/charges", json={"amount_fen": 500}, headers={**headers, **key})
    again = await api.post("/api/v1/_probe/charges", json={"amount_fen": 500}, headers={**headers, **key})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert probe.calls == 1


async def test_same_key_with_another_request_is_refused(api, probe, headers) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    await api.post("/api/v1/_probe/charges", json={"amount_fen": 500}, headers={**headers, **key})
    reused = await api.post("/api/v1/_probe/charges", json={"amount_fen": 900}, headers={**headers, **key})
    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert probe.calls == 1


async def test_keys_belong_to_their_user(api, sessions, probe, headers) -> None:
    other_user, _ = await make_user(sessions, Role.PATIENT)
    other = await login(api, other_user)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    mine = await api.post("/api/v1/_probe/charges", json={"amount_fen": 1}, headers={**headers, **key})
    theirs = await api.post("/api/v1/_probe/charges", json={"amount_fen": 1}, headers={**other, **key})
    assert theirs.status_code == 201 and "idempotent-replayed" not in theirs.headers
    assert mine.json()["by"] != theirs.json()["by"]
    assert probe.calls == 2


async def test_ten_concurrent_repeats_run_the_work_once(api, probe, headers) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    responses = await asyncio.gather(
        *(api.post("/api/v1/_probe/charges", json={"amount_fen": 700}, headers={**headers, **key}) for _ in range(10))
    )
    assert probe.calls == 1
    assert {response.status_code for response in responses} == {201}
    assert all(response.json() == responses[0].json() for response in responses)
    assert sum(response.headers.get("idempotent-replayed") == "true" for response in responses) == 9


async def test_business_4xx_is_stored_but_5xx_is_not(api, probe, headers) -> None:
    declined = {"Idempotency-Key": str(uuid.uuid4())}
    for _ in range(2):
        response = await api.post(
            "/api/v1/_probe/charges", json={"amount_fen": 1, "outcome": "declined"}, headers={**headers, **declined}
        )
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "PAYMENT_DECLINED"
    assert response.headers["idempotent-replayed"] == "true"
    assert probe.calls == 1

    down = {"Idempotency-Key": str(uuid.uuid4())}
    for expected_call in (2, 3):
        response = await api.post(
            "/api/v1/_probe/charges", json={"amount_fen": 1, "outcome": "unavailable"}, headers={**headers, **down}
        )
        assert response.status_code == 503
        assert response.json()["call"] == expected_call
        assert "idempotent-replayed" not in response.headers


async def test_without_a_key_the_work_runs_every_time(api, probe, headers) -> None:
    for _ in range(2):
        assert (await api.post("/api/v1/_probe/charges", json={"amount_fen": 1}, headers=headers)).status_code == 201
    assert probe.calls == 2


@pytest.mark.parametrize("bad_key", ["", "has space", "x" * 129, "中文键".encode()])
async def test_invalid_key_is_400(api, probe, headers, bad_key: str | bytes) -> None:
    response = await api.post(
        "/api/v1/_probe/charges", json={"amount_fen": 1}, headers={**headers, "Idempotency-Key": bad_key}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_IDEMPOTENCY_KEY"
    assert probe.calls == 0


async def test_a_repeat_that_waits_too_long_is_told_to_retry(api, probe, headers, monkeypatch) -> None:
    monkeypatch.setattr("api.idempotency._WAIT_S", 0.05)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first, repeat = await asyncio.gather(
        api.post("/api/v1/_probe/charges", json={"amount_fen": 3}, headers={**headers, **key}),
        api.post("/api/v1/_probe/charges", json={"amount_fen": 3}, headers={**headers, **key}),
    )
    assert sorted([first.status_code, repeat.status_code]) == [201, 409]
    refused = first if first.status_code == 409 else repeat
    assert refused.json()["code"] == "IDEMPOTENCY_IN_PROGRESS"
    assert probe.calls == 1


async def test_refusals_stored_after_their_answers_all_reach_their_claims(api, app, sessions) -> None:
    ctx = app.state.ctx
    user_id, _ = await make_user(sessions, Role.PATIENT)
    keys = [str(uuid.uuid4()) for _ in range(5)]
    for key in keys:
        await ctx.pg.execute(
            "INSERT INTO idempotency_records (user_id, key, request_hash, status_code, body, created_at)"
            " VALUES ($1, $2, 'h', 0, '{}'::jsonb, now())",
            user_id,
            key,
        )
    for n, key in enumerate(keys):
        ctx.refusals.add(user_id, key, 409, json.dumps({"code": "SLOT_TAKEN", "n": n}))
    await ctx.refusals.flush()
    rows = await ctx.pg.fetch("SELECT key, status_code, body FROM idempotency_records WHERE user_id = $1", user_id)
    assert {row["key"]: (row["status_code"], json.loads(row["body"])["n"]) for row in rows} == {
        key: (409, n) for n, key in enumerate(keys)
    }

"""The integration gateway (8.5.8): SM2-signed calls of registered apps, replay protection shared through PostgreSQL,
rate limits, circuit breakers, encrypted bodies, refusals audited and alerted, Prometheus metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio.client import Client

from api.gateway import protocol
from api.main import create_app
from api.resilience import BreakerState, CircuitBreaker
from core.crypto.sm2 import Sm2PrivateKey
from core.settings import Settings
from models.common import Role
from models.tables import AuditEvent, Prescription, Visit
from tests.api.helpers import login, make_department, make_disease, make_slot, make_user, unique
from tests.workflows.fakes import FakeWorld
from workers.worker import build_workers
from workflows.gateway_alert import gateway_alert_workflow_id

ADMIN_APPS = "/api/v1/admin/integration-apps"
PROBLEM = "application/problem+json"


@dataclass
class Partner:
    app_id: str
    key: Sm2PrivateKey
    sm4_key: bytes


@asynccontextmanager
async def running(settings: Settings, client: Client) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """One API process: an app with its lifespan entered and an HTTP client for it."""
    app = create_app(settings, temporal_client=client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield app, http


@pytest.fixture
def settings_for(database_url: str, uid: str) -> Any:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "task_queue": f"gw-{uid}",
            "gateway_breaker_failures": 2,
            "gateway_breaker_reset_s": 0.5,
            **overrides,
        }
        return Settings(**values)

    return make


@pytest.fixture
async def gateway(settings_for: Any, engine: Any, client: Client) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    # `engine` is requested only so the schema is migrated before the app's own engine connects.
    async with running(settings_for(), client) as pair:
        yield pair


@pytest.fixture
def api(gateway: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return gateway[1]


@pytest.fixture
async def admin(api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    user_id, _ = await make_user(sessions, Role.ADMIN)
    return await login(api, user_id)


async def register(
    api: httpx.AsyncClient, admin: dict[str, str], *, scopes: tuple[str, ...] = ("rx.read",), rate: int = 600
) -> Partner:
    key = Sm2PrivateKey.generate()
    body = {
        "name": "合作药房",
        "public_key_pem": key.public_key().to_pem().decode(),
        "scopes": list(scopes),
        "rate_limit_per_minute": rate,
    }
    response = await api.post(ADMIN_APPS, json=body, headers=admin)
    assert response.status_code == 201, response.text
    credentials = response.json()
    sm4_key = protocol.open_key_envelope(key, credentials["sm4_key_envelope"])
    return Partner(app_id=credentials["app"]["app_id"], key=key, sm4_key=sm4_key)


async def call(
    api: httpx.AsyncClient,
    partner: Partner,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    sign_target: str | None = None,
    sign_body: bytes | None = None,
    headers: dict[str, str] | None = None,
    **signing: Any,
) -> httpx.Response:
    """A signed call; `sign_target`/`sign_body` sign something other than what is sent (tampering)."""
    signed = protocol.signed_headers(
        partner.key,
        partner.app_id,
        method,
        sign_target or target,
        body if sign_body is None else sign_body,
        **signing,
    )
    return await api.request(method, target, content=body, headers={**signed, **(headers or {})})


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == code


async def approved_prescription(sessions: async_sessionmaker[AsyncSession], *, reviewed: bool = True) -> str:
    """A prescription in the read model, approved by a pharmacist unless `reviewed` is False."""
    _, patient_id = await make_user(sessions, Role.PATIENT)
    department_id = await make_department(sessions)
    _, doctor_id = await make_user(sessions, Role.DOCTOR, department_id=department_id)
    assert patient_id is not None and doctor_id is not None
    disease = await make_disease(sessions, department_id)
    starts_at = datetime.now(UTC) + timedelta(days=1)
    slot_id = await make_slot(sessions, doctor_id, disease, starts_at, status="booked")
    visit_id, rx_id = unique("visit"), unique("rx")
    draft = {
        "diagnosis": "胃脘痛",
        "items": [{"herb": "柴胡", "dose_g": 10}, {"herb": "白芍", "dose_g": 12}],
        "doses": 7,
        "usage": "水煎服，每日一剂，早晚分服",
    }
    async with sessions() as session, session.begin():
        session.add(
            Visit(
                id=visit_id,
                patient_id=patient_id,
                doctor_id=doctor_id,
                slot_id=slot_id,
                disease_code=disease,
                stage="finished",
                fee_fen=5000,
                starts_at=starts_at,
            )
        )
        await session.flush()
        session.add(
            Prescription(
                id=rx_id,
                visit_id=visit_id,
                patient_id=patient_id,
                doctor_id=doctor_id,
                stage="awaiting_payment" if reviewed else "awaiting_review",
                draft=draft,
                total_fen=12345,
                pickup="delivery",
                reviewed_by="ph-1" if reviewed else None,
            )
        )
    return rx_id


async def clear_of_minute_boundary(margin_s: float = 8.0) -> None:
    """Counting windows are database minutes: start a test that counts within one minute well inside it."""
    left = 60 - time.time() % 60
    if left < margin_s:
        await asyncio.sleep(left + 0.2)


async def refusal_audits(sessions: async_sessionmaker[AsyncSession], app_id: str) -> int:
    async with sessions() as session:
        query = select(func.count()).where(
            col(AuditEvent.action) == "integration.refused", col(AuditEvent.subject_id) == app_id
        )
        return (await session.execute(query)).scalar_one()


# --- accepted calls and what a partner sees ---------------------------------------------------------------------------


async def test_signed_call_reads_an_approved_prescription(
    api: httpx.AsyncClient, admin: dict[str, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    partner = await register(api, admin)
    rx_id = await approved_prescription(sessions)

    response = await call(api, partner, "GET", f"/api/v1/integration/prescriptions/{rx_id}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["prescription_id"] == rx_id
    assert body["stage"] == "awaiting_payment"
    assert body["total_fen"] == 12345
    assert [item["herb"] for item in body["draft"]["items"]] == ["柴胡", "白芍"]
    # A pharmacy gets the prescription, never who it is for.
    assert "patient_id" not in body and "address" not in json.dumps(body)


async def test_a_prescription_not_yet_approved_is_not_found(
    api: httpx.AsyncClient, admin: dict[str, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    partner = await register(api, admin)
    rx_id = await approved_prescription(sessions, reviewed=False)

    response = await call(api, partner, "GET", f"/api/v1/integration/prescriptions/{rx_id}")

    refused(response, 404, "NOT_FOUND")


async def test_a_query_string_is_part_of_what_is_signed(api: httpx.AsyncClient, admin: dict[str, str]) -> None:
    partner = await register(api, admin)
    target = "/api/v1/integration/prescriptions/rx-none?fields=all"

    signed = await call(api, partner, "GET", target)
    tampered = await call(api, partner, "GET", target, sign_target="/api/v1/integration/prescriptions/rx-none")

    refused(signed, 404, "NOT_FOUND")  # through the gateway, to the handler
    refused(tampered, 401, "SIGNATURE_INVALID")


# --- refusals ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tamper", "status", "code"),
    [
        ("body", 401, "SIGNATURE_INVALID"),
        ("path", 401, "SIGNATURE_INVALID"),
        ("method", 401, "SIGNATURE_INVALID"),
        ("timestamp", 401, "SIGNATURE_INVALID"),
        ("nonce", 401, "SIGNATURE_INVALID"),
        ("other_key", 401, "SIGNATURE_INVALID"),
        ("garbled_signature", 401, "SIGNATURE_INVALID"),
        ("stale", 401, "TIMESTAMP_SKEW"),
        ("future", 401, "TIMESTAMP_SKEW"),
        ("unknown_app", 401, "APP_UNKNOWN"),
        ("short_nonce", 401, "NONCE_INVALID"),
        ("no_headers", 401, "APP_UNKNOWN"),
        ("cipher", 400, "BODY_DECRYPTION_FAILED"),
    ],
)
async def test_tampered_calls_are_refused_before_any_handler(
    api: httpx.AsyncClient, admin: dict[str, str], tamper: str, status: int, code: str
) -> None:
    partner = await register(api, admin)
    target = "/api/v1/integration/prescriptions/rx-1"
    body = b'{"note": "ok"}'
    now = int(time.time())
    signed = protocol.signed_headers(partner.key, partner.app_id, "POST", target, body, timestamp=now)
    send_target, send_body, method, headers = target, body, "POST", dict(signed)
    if tamper == "body":
        send_body = b'{"note": "changed"}'
    elif tamper == "path":
        send_target = "/api/v1/integration/prescriptions/rx-2"
    elif tamper == "method":
        method = "PUT"
    elif tamper == "timestamp":
        headers[protocol.TIMESTAMP] = str(now + 1)
    elif tamper == "nonce":
        headers[protocol.NONCE] = headers[protocol.NONCE][::-1] + "x"
    elif tamper == "other_key":
        headers = protocol.signed_headers(Sm2PrivateKey.generate(), partner.app_id, "POST", target, body)
    elif tamper == "garbled_signature":
        headers[protocol.SIGNATURE] = "not base64!"
    elif tamper == "stale":
        headers = protocol.signed_headers(partner.key, partner.app_id, "POST", target, body, timestamp=now - 301)
    elif tamper == "future":
        headers = protocol.signed_headers(partner.key, partner.app_id, "POST", target, body, timestamp=now + 301)
    elif tamper == "unknown_app":
        headers = protocol.signed_headers(partner.key, "ia-0000000000000000", "POST", target, body)
    elif tamper == "short_nonce":
        headers = protocol.signed_headers(partner.key, partner.app_id, "POST", target, body, nonce="abc")
    elif tamper == "no_headers":
        headers = {}
    elif tamper == "cipher":
        headers[protocol.ENCRYPTION] = "sm2"

    response = await api.request(method, send_target, content=send_body, headers=headers)

    refused(response, status, code)


async def test_control_characters_in_the_path_are_answered_not_failed(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    partner = await register(api, admin)
    target = "/api/v1/integration/prescriptions/%00%01"

    refused(await api.get(target), 401, "APP_UNKNOWN")  # audited with the path made printable
    refused(await call(api, partner, "GET", target), 422, "VALIDATION_FAILED")


async def test_a_nonce_is_used_once(api: httpx.AsyncClient, admin: dict[str, str]) -> None:
    partner = await register(api, admin)
    target = "/api/v1/integration/prescriptions/rx-none"
    headers = protocol.signed_headers(partner.key, partner.app_id, "GET", target)

    first = await api.get(target, headers=headers)
    again = await api.get(target, headers=headers)

    refused(first, 404, "NOT_FOUND")
    refused(again, 401, "NONCE_REUSED")


async def test_replay_is_refused_by_another_api_process(
    settings_for: Any, client: Client, api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """Two API processes behind a load balancer share nothing but PostgreSQL: a call replayed to the other one is
    still refused."""
    partner = await register(api, admin)
    target = "/api/v1/integration/prescriptions/rx-none"
    headers = protocol.signed_headers(partner.key, partner.app_id, "GET", target)

    async with running(settings_for(), client) as (_, other):
        first = await api.get(target, headers=headers)
        replayed = await other.get(target, headers=headers)

    refused(first, 404, "NOT_FOUND")
    refused(replayed, 401, "NONCE_REUSED")


async def test_scope_is_checked_before_the_handler(
    api: httpx.AsyncClient, admin: dict[str, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    partner = await register(api, admin, scopes=())
    rx_id = await approved_prescription(sessions)

    response = await call(api, partner, "GET", f"/api/v1/integration/prescriptions/{rx_id}")

    refused(response, 403, "SCOPE_DENIED")
    assert await refusal_audits(sessions, partner.app_id) == 1


async def test_a_disabled_app_and_a_rotated_key_are_refused(api: httpx.AsyncClient, admin: dict[str, str]) -> None:
    partner = await register(api, admin)
    target = "/api/v1/integration/prescriptions/rx-none"

    new_key = Sm2PrivateKey.generate()
    rotated = await api.post(
        f"{ADMIN_APPS}/{partner.app_id}/keys",
        json={"public_key_pem": new_key.public_key().to_pem().decode()},
        headers=admin,
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["app"]["key_version"] == 2
    renewed = Partner(partner.app_id, new_key, protocol.open_key_envelope(new_key, rotated.json()["sm4_key_envelope"]))
    assert renewed.sm4_key != partner.sm4_key
    refused(await call(api, partner, "GET", target), 401, "SIGNATURE_INVALID")
    refused(await call(api, renewed, "GET", target), 404, "NOT_FOUND")

    disabled = await api.patch(f"{ADMIN_APPS}/{partner.app_id}", json={"active": False}, headers=admin)
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    refused(await call(api, renewed, "GET", target), 401, "APP_UNKNOWN")


async def test_only_admins_register_apps_and_keys_must_be_sm2(
    api: httpx.AsyncClient, admin: dict[str, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    doctor_id, _ = await make_user(sessions, Role.DOCTOR)
    doctor = await login(api, doctor_id)
    body = {"name": "药房", "public_key_pem": Sm2PrivateKey.generate().public_key().to_pem().decode()}

    refused(await api.post(ADMIN_APPS, json=body, headers=doctor), 403, "FORBIDDEN")
    refused(
        await api.post(ADMIN_APPS, json={**body, "public_key_pem": "garbage"}, headers=admin), 422, "INVALID_PUBLIC_KEY"
    )
    listed = await api.get(ADMIN_APPS, headers=admin)
    assert listed.status_code == 200


# --- rate limits and breakers -----------------------------------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after(api: httpx.AsyncClient, admin: dict[str, str]) -> None:
    partner = await register(api, admin, rate=3)
    target = "/api/v1/integration/prescriptions/rx-none"
    await clear_of_minute_boundary()

    within = [await call(api, partner, "GET", target) for _ in range(3)]
    over = await call(api, partner, "GET", target)

    assert [response.status_code for response in within] == [404, 404, 404]
    refused(over, 429, "RATE_LIMITED")
    assert 1 <= int(over.headers["Retry-After"]) <= 60


class _DownPool:
    """PostgreSQL refusing connections."""

    def __init__(self) -> None:
        self.calls = 0

    async def fetchrow(self, *args: object) -> None:
        self.calls += 1
        raise ConnectionRefusedError("connection refused")


async def test_breaker_opens_then_lets_one_probe_through(
    gateway: tuple[FastAPI, httpx.AsyncClient], admin: dict[str, str]
) -> None:
    app, api = gateway
    partner = await register(api, admin)
    target = "/api/v1/integration/prescriptions/rx-none"
    ctx = app.state.ctx
    database, down = ctx.pg, _DownPool()
    ctx.pg = down
    try:
        for _ in range(2):  # two failures open it
            refused(await call(api, partner, "GET", target), 503, "SERVICE_UNAVAILABLE")
        assert down.calls == 2
        opened = await call(api, partner, "GET", target)
        refused(opened, 503, "SERVICE_UNAVAILABLE")
        assert down.calls == 2  # answered without touching the database
        assert int(opened.headers["Retry-After"]) >= 1
        assert 'qihuang_circuit_breaker_state{dependency="postgresql"} 2.0' in (await api.get("/metrics")).text

        await asyncio.sleep(0.6)
        failed_probe = await call(api, partner, "GET", target)
        refused(failed_probe, 503, "SERVICE_UNAVAILABLE")
        assert down.calls == 3  # one probe, which failed: open again
        refused(await call(api, partner, "GET", target), 503, "SERVICE_UNAVAILABLE")
        assert down.calls == 3

        await asyncio.sleep(0.6)
        ctx.pg = database
        refused(await call(api, partner, "GET", target), 404, "NOT_FOUND")  # the probe succeeds: closed
    finally:
        ctx.pg = database
    assert 'qihuang_circuit_breaker_state{dependency="postgresql"} 0.0' in (await api.get("/metrics")).text


async def test_circuit_breaker_states() -> None:
    now = [0.0]
    changes: list[BreakerState] = []
    breaker = CircuitBreaker(
        "temporal",
        failure_threshold=2,
        reset_after_s=10,
        failures=(ConnectionError,),
        timeout_s=1,
        clock=lambda: now[0],
        on_change=lambda _, state: changes.append(state),
    )

    async def attempt(fail: bool) -> int:
        try:
            async with breaker.guard():
                if fail:
                    raise ConnectionError
        except Exception as exc:
            return getattr(exc, "status", 0)
        return 200

    assert await attempt(True) == 503 and breaker.state is BreakerState.CLOSED
    assert await attempt(False) == 200  # a success resets the count
    assert await attempt(True) == 503 and breaker.state is BreakerState.CLOSED
    assert await attempt(True) == 503 and breaker.state is BreakerState.OPEN
    now[0] = 9.9
    assert await attempt(False) == 503  # still open: not even tried

    now[0] = 10.0
    async with breaker.guard():  # the probe
        assert breaker.state is BreakerState.HALF_OPEN
        assert await attempt(False) == 503  # one probe at a time
    assert breaker.state is BreakerState.CLOSED
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]

    async def hangs() -> None:
        async with breaker.guard():
            await asyncio.sleep(5)

    with pytest.raises(Exception) as slow:
        await hangs()
    assert getattr(slow.value, "status", None) == 503  # a hanging dependency counts as a failure


# --- encrypted bodies -------------------------------------------------------------------------------------------------


async def test_encrypted_bodies_round_trip(gateway: tuple[FastAPI, httpx.AsyncClient], admin: dict[str, str]) -> None:
    app, api = gateway
    partner = await register(api, admin)

    async def echo(request: Request) -> dict[str, Any]:
        # What a handler behind the gateway sees of an encrypted call.
        return {"body": (await request.body()).decode(), "length": request.headers["content-length"]}

    app.add_api_route("/api/v1/integration/echo", echo, methods=["POST"])
    target = "/api/v1/integration/echo"
    plaintext = json.dumps({"items": ["柴胡"]}, ensure_ascii=False).encode()
    headers = protocol.signed_headers(partner.key, partner.app_id, "POST", target, b"")  # only for its nonce
    nonce = headers[protocol.NONCE]
    sealed = protocol.seal(partner.sm4_key, plaintext, protocol.request_aad(partner.app_id, nonce))

    response = await call(
        api,
        partner,
        "POST",
        target,
        sealed,
        nonce=nonce,
        headers={protocol.ENCRYPTION: protocol.SM4_GCM, "Content-Type": "application/json"},
    )

    assert response.status_code == 200, response.text
    assert response.headers[protocol.ENCRYPTION] == protocol.SM4_GCM
    opened = protocol.unseal(partner.sm4_key, response.content, protocol.response_aad(partner.app_id, nonce))
    assert json.loads(opened) == {"body": plaintext.decode(), "length": str(len(plaintext))}

    # Sealed for another request (another nonce): signed correctly, but it does not open.
    other = protocol.seal(partner.sm4_key, plaintext, protocol.request_aad(partner.app_id, "x" * 16))
    moved = await call(api, partner, "POST", target, other, headers={protocol.ENCRYPTION: protocol.SM4_GCM})
    refused(moved, 400, "BODY_DECRYPTION_FAILED")


# --- monitoring: audit, alert, metrics --------------------------------------------------------------------------------


async def test_refusals_are_audited_within_a_limit_and_alert_the_admins_once(
    settings_for: Any, client: Client, sessions: async_sessionmaker[AsyncSession], uid: str
) -> None:
    settings = settings_for(gateway_audit_per_minute=4, gateway_alert_threshold=3)
    world = FakeWorld()
    async with running(settings, client) as (_, api), AsyncExitStack() as workers:
        admin_id, _ = await make_user(sessions, Role.ADMIN)
        partner = await register(api, await login(api, admin_id))
        target = "/api/v1/integration/prescriptions/rx-none"
        await clear_of_minute_boundary()
        window = datetime.now(UTC).replace(second=0, microsecond=0)

        for _ in range(6):
            forged = await call(api, partner, "GET", target, sign_target="/api/v1/integration/other")
            refused(forged, 401, "SIGNATURE_INVALID")

        assert await refusal_audits(sessions, partner.app_id) == 4
        for worker in build_workers(client, settings.task_queue, world.activity_sets()):
            await workers.enter_async_context(worker)
        alert = client.get_workflow_handle(gateway_alert_workflow_id(partner.app_id, window))
        await asyncio.wait_for(alert.result(), timeout=30)

    [notice] = world.notices
    assert notice.user_ref == "role:admin"
    assert notice.template == "gateway_illegal_access"
    assert notice.params["app"] == partner.app_id
    assert notice.params["count"] == "3"
    assert notice.params["code"] == "SIGNATURE_INVALID"


async def test_metrics_are_exposed_by_route_template(api: httpx.AsyncClient, admin: dict[str, str]) -> None:
    partner = await register(api, admin)
    await call(api, partner, "GET", "/api/v1/integration/prescriptions/rx-none")
    await api.get(f"/api/v1/integration/prescriptions/{unique('rx')}")  # unsigned: refused

    response = await api.get("/metrics")

    assert response.status_code == 200
    text = response.text
    route = "/api/v1/integration/prescriptions/{prescription_id}"
    assert f'qihuang_http_requests_total{{method="GET",route="{route}",status="404"}}' in text
    assert f'qihuang_http_request_duration_seconds_bucket{{le="0.005",method="GET",route="{route}"}}' in text
    assert 'qihuang_gateway_refusals_total{code="APP_UNKNOWN"}' in text
    assert "rx-none" not in text  # raw paths never become labels


async def test_metrics_may_require_a_token(settings_for: Any, client: Client, engine: Any) -> None:
    async with running(settings_for(metrics_token="scrape-secret"), client) as (_, api):
        anonymous = await api.get("/metrics")
        scraper = await api.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})

    refused(anonymous, 401, "UNAUTHORIZED")
    assert scraper.status_code == 200

"""The codec server for the Temporal UI and CLI (api/routers/temporal_codec.py): admins only, every decode audited
without its content, CORS only for the configured UI pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client

from api.main import create_app
from core.payload_codec import ENCODING, is_encrypted
from core.settings import Settings
from core.temporal import PLAINTEXT_CONVERTER
from models.common import Role
from models.tables import AuditEvent
from tests.api.helpers import login, make_user

DECODE = "/api/v1/temporal-codec/decode"
ENCODE = "/api/v1/temporal-codec/encode"
PROBLEM = "application/problem+json"
UI = "http://127.0.0.1:8233"
SECRET = "患者李四，身份证 110101199001011234"


def as_json(payloads: list[Payload]) -> dict[str, Any]:
    """What the UI and CLI send: a Payloads message as protobuf JSON."""
    return json_format.MessageToDict(Payloads(payloads=payloads))


def from_json(body: str) -> list[Payload]:
    return list(json_format.Parse(body, Payloads()).payloads)


async def sealed(client: Client, *values: object) -> list[Payload]:
    """Payloads as the API and the workers store them in Temporal."""
    return await client.data_converter.encode(list(values))


async def decode_audits(sessions: async_sessionmaker[AsyncSession], user_id: str | None) -> list[AuditEvent]:
    async with sessions() as session:
        query = select(AuditEvent).where(col(AuditEvent.action) == "temporal.payloads_decoded")
        if user_id is None:
            query = query.where(col(AuditEvent.actor_user_id).is_(None))
        else:
            query = query.where(col(AuditEvent.actor_user_id) == user_id)
        return list((await session.execute(query.order_by(col(AuditEvent.id)))).scalars())


@pytest.fixture
async def admin(api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]) -> tuple[str, dict[str, str]]:
    user_id, _ = await make_user(sessions, Role.ADMIN)
    return user_id, await login(api, user_id)


async def test_admin_decodes_what_the_workers_sealed_and_it_is_audited(
    api: httpx.AsyncClient, client: Client, sessions: async_sessionmaker[AsyncSession], admin: tuple[str, dict]
) -> None:
    user_id, headers = admin
    stored = await sealed(client, SECRET, {"visit_id": "v-1"})
    written_before_encryption = PLAINTEXT_CONVERTER.payload_converter.to_payloads(["旧载荷"])

    response = await api.post(
        DECODE,
        json=as_json([*stored, *written_before_encryption]),
        headers={**headers, "X-Namespace": "default", "Origin": UI},
    )

    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == UI
    decoded = from_json(response.text)
    assert not any(is_encrypted(p) for p in decoded)
    assert PLAINTEXT_CONVERTER.payload_converter.from_payloads(decoded) == [SECRET, {"visit_id": "v-1"}, "旧载荷"]

    [event] = await decode_audits(sessions, user_id)
    assert (event.subject_type, event.subject_id) == ("temporal_namespace", "default")
    assert event.detail == {"payloads": 3, "encrypted": 2}
    assert event.client_ip == "127.0.0.1" and event.request_id == response.headers["x-request-id"]
    # Who and how many, never what.
    assert "李四" not in str(event.detail) + str(event.reason)


async def test_admin_encodes_for_the_ui(api: httpx.AsyncClient, client: Client, admin: tuple[str, dict]) -> None:
    _, headers = admin
    plain = PLAINTEXT_CONVERTER.payload_converter.to_payloads([SECRET])

    response = await api.post(ENCODE, json=as_json(plain), headers=headers)

    assert response.status_code == 200, response.text
    [encoded] = from_json(response.text)
    assert encoded.metadata["encoding"] == ENCODING
    assert await client.data_converter.decode([encoded]) == [SECRET]


async def test_patient_is_refused_and_anonymous_must_sign_in(
    api: httpx.AsyncClient, client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = as_json(await sealed(client, SECRET))
    patient_id, _ = await make_user(sessions, Role.PATIENT)
    as_patient = await api.post(DECODE, json=body, headers=await login(api, patient_id))
    assert as_patient.status_code == 403
    assert as_patient.headers["content-type"] == PROBLEM
    assert as_patient.json()["code"] == "FORBIDDEN"
    assert SECRET not in as_patient.text

    anonymous = await api.post(DECODE, json=body)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == PROBLEM
    assert anonymous.json()["code"] == "UNAUTHORIZED"
    assert (await api.post(ENCODE, json=body)).status_code == 401
    assert await decode_audits(sessions, patient_id) == []


async def test_bad_input_is_a_400_problem(api: httpx.AsyncClient, client: Client, admin: tuple[str, dict]) -> None:
    _, headers = admin
    malformed = await api.post(DECODE, content=b'{"payloads": 7}', headers=headers)
    assert malformed.status_code == 400
    assert malformed.json()["code"] == "MALFORMED_PAYLOADS"

    [payload] = await sealed(client, SECRET)
    payload.data = payload.data[:-1] + bytes([payload.data[-1] ^ 1])
    tampered = await api.post(DECODE, json=as_json([payload]), headers=headers)
    assert tampered.status_code == 400
    assert tampered.headers["content-type"] == PROBLEM
    assert tampered.json()["code"] == "PAYLOAD_UNREADABLE"


async def test_preflight_admits_only_the_configured_ui(api: httpx.AsyncClient) -> None:
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-namespace"}

    from_ui = await api.options(DECODE, headers={**asked, "Origin": UI})
    assert from_ui.status_code == 204
    assert from_ui.headers["access-control-allow-origin"] == UI
    assert "POST" in from_ui.headers["access-control-allow-methods"]
    assert "x-namespace" in from_ui.headers["access-control-allow-headers"].lower()
    assert "authorization" in from_ui.headers["access-control-allow-headers"].lower()

    elsewhere = await api.options(DECODE, headers={**asked, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in elsewhere.headers


@pytest.fixture
async def open_loopback_app(database_url: str, engine: AsyncEngine, client: Client) -> AsyncIterator[Any]:
    settings = Settings(database_url=database_url, temporal_codec_open_loopback=True)  # type: ignore[call-arg]
    app = create_app(settings, temporal_client=client)
    async with app.router.lifespan_context(app):
        yield app


async def test_dev_switch_opens_decoding_to_this_machine_only(
    open_loopback_app: Any, client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = as_json(await sealed(client, SECRET))
    before = len(await decode_audits(sessions, None))

    local = httpx.ASGITransport(app=open_loopback_app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=local, base_url="http://testserver") as http:
        response = await http.post(DECODE, json=body)
    assert response.status_code == 200, response.text
    assert PLAINTEXT_CONVERTER.payload_converter.from_payloads(from_json(response.text)) == [SECRET]
    audits = await decode_audits(sessions, None)
    assert len(audits) == before + 1
    assert audits[-1].reason is not None and audits[-1].client_ip == "127.0.0.1"

    remote = httpx.ASGITransport(app=open_loopback_app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=remote, base_url="http://testserver") as http:
        assert (await http.post(DECODE, json=body)).status_code == 401

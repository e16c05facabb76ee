"""Consultation chat across two API processes: two real servers (each its own app, pools and LISTEN connection) on
their own ports against the session's PostgreSQL, and real WebSocket clients. The patient talks to process A, the
doctor to process B; only PostgreSQL NOTIFY links the two."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from api.main import create_app
from api.services.consult_hub import LISTENER_NAME
from api.services.consult_socket import CHAT_SUBPROTOCOL
from core.settings import Settings
from models.common import Role
from tests.api.consult_helpers import ConsultVisit, make_consult_visit
from tests.api.helpers import PASSWORD, make_user
from tests.simulators.serving import serve

WAIT_S = 10.0


@dataclass
class Server:
    app: FastAPI
    http: httpx.AsyncClient
    ws_base: str


@asynccontextmanager
async def serving(database_url: str, client: Client) -> AsyncIterator[Server]:
    app = create_app(Settings(database_url=database_url), temporal_client=client)  # type: ignore[call-arg]
    async with (
        serve(app, lifespan="on") as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=WAIT_S) as http,
    ):
        yield Server(app=app, http=http, ws_base=base_url.replace("http://", "ws://", 1))


@pytest_asyncio.fixture(scope="module")
async def processes(database_url: str, engine: AsyncEngine, client: Client) -> AsyncIterator[tuple[Server, Server]]:
    # `engine` only so the schema is migrated before the servers connect.
    async with serving(database_url, client) as first, serving(database_url, client) as second:
        for server in (first, second):
            async with asyncio.timeout(WAIT_S):
                await server.app.state.consult_hub.listening.wait()
        yield first, second


async def token_for(server: Server, username: str) -> str:
    answer = await server.http.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


@asynccontextmanager
async def chat_socket(
    server: Server, visit_id: str, token: str | None, after: int = 0
) -> AsyncIterator[ClientConnection]:
    protocols = [Subprotocol(CHAT_SUBPROTOCOL)] + ([Subprotocol(f"bearer.{token}")] if token else [])
    url = f"{server.ws_base}/api/v1/visits/{visit_id}/chat?after={after}"
    async with connect(url, subprotocols=protocols, open_timeout=WAIT_S) as socket:
        assert socket.subprotocol == CHAT_SUBPROTOCOL
        yield socket


async def frame_where(socket: ClientConnection, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The next frame satisfying `wanted`, skipping the others."""
    async with asyncio.timeout(WAIT_S):
        while True:
            frame: dict[str, Any] = json.loads(await socket.recv())
            if wanted(frame):
                return frame


def message_with(body: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame["type"] == "message" and frame["message"]["body"] == body


async def synced(socket: ClientConnection) -> list[dict[str, Any]]:
    """The messages sent before the `synced` frame (the backlog)."""
    backlog: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT_S):
        while True:
            frame = json.loads(await socket.recv())
            if frame["type"] == "synced":
                return backlog
            if frame["type"] == "message":
                backlog.append(frame["message"])


async def close_code(server: Server, visit_id: str, token: str | None, query: str = "") -> int:
    protocols = [Subprotocol(CHAT_SUBPROTOCOL)] + ([Subprotocol(f"bearer.{token}")] if token else [])
    url = f"{server.ws_base}/api/v1/visits/{visit_id}/chat{query}"
    async with connect(url, subprotocols=protocols, open_timeout=WAIT_S) as socket:
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(WAIT_S):
                await socket.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


@pytest_asyncio.fixture
async def visit(sessions: async_sessionmaker[AsyncSession]) -> ConsultVisit:
    return await make_consult_visit(sessions)


async def test_a_message_reaches_the_other_process_in_real_time(
    processes: tuple[Server, Server], visit: ConsultVisit
) -> None:
    a, b = processes
    patient_token, doctor_token = await token_for(a, visit.patient_user), await token_for(b, visit.doctor_user)
    async with (
        chat_socket(a, visit.visit_id, patient_token) as patient,
        chat_socket(b, visit.visit_id, doctor_token) as doctor,
    ):
        assert await synced(patient) == [] and await synced(doctor) == []

        await patient.send(json.dumps({"type": "message", "body": "医生，昨晚又胃胀了。", "client_msg_id": "p-1"}))
        ack = await frame_where(patient, lambda frame: frame["type"] == "ack")
        assert ack["client_msg_id"] == "p-1" and ack["replayed"] is False
        arrived = (await frame_where(doctor, message_with("医生，昨晚又胃胀了。")))["message"]
        assert (arrived["id"], arrived["sender_user_id"], arrived["sender_role"]) == (
            ack["id"],
            visit.patient_user,
            "patient",
        )
        # The sender's own socket gets the stored message too.
        await frame_where(patient, message_with("医生，昨晚又胃胀了。"))

        # HTTP sends on process B reach the socket on process A.
        sent = await b.http.post(
            f"/api/v1/visits/{visit.visit_id}/messages",
            json={"body": "饭后半小时散步，忌生冷。"},
            headers={"Authorization": f"Bearer {doctor_token}"},
        )
        assert sent.status_code == 201, sent.text
        assert (await frame_where(patient, message_with("饭后半小时散步，忌生冷。")))["message"]["id"] == sent.json()[
            "id"
        ]

        # A read receipt from the patient on A shows on the doctor's socket on B.
        await patient.send(json.dumps({"type": "read", "up_to": sent.json()["id"]}))
        receipt = await frame_where(doctor, lambda frame: frame["type"] == "read" and frame["role"] == "patient")
        assert (receipt["user_id"], receipt["last_read_id"]) == (visit.patient_user, sent.json()["id"])

        # A refused frame is answered on the socket, which stays open.
        await patient.send(json.dumps({"type": "message", "body": "", "client_msg_id": "p-2"}))
        assert (await frame_where(patient, lambda frame: frame["type"] == "error"))["code"] == "BAD_FRAME"
        await patient.send(json.dumps({"type": "ping"}))
        await frame_where(patient, lambda frame: frame["type"] == "pong")


async def test_an_offline_participant_gets_what_was_missed_on_reconnect(
    processes: tuple[Server, Server], visit: ConsultVisit
) -> None:
    a, b = processes
    patient_token, doctor_token = await token_for(a, visit.patient_user), await token_for(b, visit.doctor_user)
    async with chat_socket(b, visit.visit_id, doctor_token) as doctor:
        await synced(doctor)
        for body in ("第一条：复诊前请拍舌苔照片", "第二条：药先停两天"):
            await doctor.send(json.dumps({"type": "message", "body": body}))
            await frame_where(doctor, message_with(body))

        # The patient was offline: on connecting, everything so far arrives before `synced`.
        async with chat_socket(a, visit.visit_id, patient_token) as patient:
            backlog = await synced(patient)
        assert [m["body"] for m in backlog] == ["第一条：复诊前请拍舌苔照片", "第二条：药先停两天"]
        last_seen = backlog[-1]["id"]

        await doctor.send(json.dumps({"type": "message", "body": "第三条：明早空腹"}))
        await frame_where(doctor, message_with("第三条：明早空腹"))

    # Reconnecting with the last id seen brings only what came after it.
    async with chat_socket(a, visit.visit_id, patient_token, after=last_seen) as patient:
        assert [m["body"] for m in await synced(patient)] == ["第三条：明早空腹"]


async def test_a_lost_listener_reconnects_and_misses_nothing(
    processes: tuple[Server, Server], visit: ConsultVisit, sessions: async_sessionmaker[AsyncSession]
) -> None:
    a, b = processes
    patient_token, doctor_token = await token_for(a, visit.patient_user), await token_for(b, visit.doctor_user)
    async with chat_socket(b, visit.visit_id, doctor_token) as doctor:
        await synced(doctor)
        async with sessions() as session:
            killed = await session.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": LISTENER_NAME},
            )
        assert killed == 2
        # Sent while process B has no listener: its notice is lost, the message is not.
        sent = await a.http.post(
            f"/api/v1/visits/{visit.visit_id}/messages",
            json={"body": "断线期间发送的消息"},
            headers={"Authorization": f"Bearer {patient_token}"},
        )
        assert sent.status_code == 201, sent.text
        assert (await frame_where(doctor, message_with("断线期间发送的消息")))["message"]["id"] == sent.json()["id"]
        async with asyncio.timeout(WAIT_S):
            await b.app.state.consult_hub.listening.wait()

        # And live delivery works again on the new connection.
        await a.http.post(
            f"/api/v1/visits/{visit.visit_id}/messages",
            json={"body": "重新连接之后"},
            headers={"Authorization": f"Bearer {patient_token}"},
        )
        await frame_where(doctor, message_with("重新连接之后"))


async def test_sockets_of_anyone_but_the_participants_are_refused(
    processes: tuple[Server, Server], visit: ConsultVisit, sessions: async_sessionmaker[AsyncSession]
) -> None:
    a, _ = processes
    stranger, _ = await make_user(sessions, Role.PATIENT)
    admin, _ = await make_user(sessions, Role.ADMIN)
    assert await close_code(a, visit.visit_id, await token_for(a, stranger)) == 4404
    assert await close_code(a, "no-such-visit", await token_for(a, visit.patient_user)) == 4404
    assert await close_code(a, visit.visit_id, await token_for(a, admin)) == 4403
    assert await close_code(a, visit.visit_id, None) == 4401
    assert await close_code(a, visit.visit_id, "not-a-token") == 4401
    # Native apps may send the header instead; a token in the URL (which gets logged) is not taken.
    patient_token = await token_for(a, visit.patient_user)
    url = f"{a.ws_base}/api/v1/visits/{visit.visit_id}/chat"
    headers = {"Authorization": f"Bearer {patient_token}"}
    async with connect(url, additional_headers=headers, open_timeout=WAIT_S) as socket:
        assert socket.subprotocol is None
        assert await synced(socket) == []
    assert await close_code(a, visit.visit_id, None, f"?access_token={patient_token}") == 4401
    # A token revoked mid-conversation ends the conversation at the next frame.
    async with chat_socket(a, visit.visit_id, patient_token) as patient:
        await synced(patient)
        logout = await a.http.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {patient_token}"})
        assert logout.status_code in (200, 204), logout.text
        await patient.send(json.dumps({"type": "ping"}))
        with pytest.raises(ConnectionClosed) as closed:
            await frame_where(patient, lambda frame: False)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

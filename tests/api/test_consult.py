"""Consultation chat and calls over HTTP: history, idempotent sends, encrypted media, receipts, who may take part, when
the conversation is open, and calls through the sandbox RTC."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from activities.adapters.rtc.sandbox import SandboxRtc
from api.services.consult import body_column
from core.crypto.sm import FieldCipher, sm3_hex
from core.settings import Settings
from models.common import Role
from models.tables import ConsultMedia, ConsultMessage
from tests.api.consult_helpers import ConsultVisit, make_consult_visit
from tests.api.helpers import login, make_user

PROBLEM = "application/problem+json"
Sessions = async_sessionmaker[AsyncSession]
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(2048)
AMR = b"#!AMR\n" + os.urandom(4096)


@pytest.fixture
async def chat(sessions: Sessions) -> ConsultVisit:
    return await make_consult_visit(sessions)


def messages_url(visit_id: str) -> str:
    return f"/api/v1/visits/{visit_id}/messages"


def assert_problem(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body: dict[str, Any] = answer.json()
    assert body["code"] == code, body
    return body


async def say(api: httpx.AsyncClient, who: dict[str, str], visit_id: str, text: str, **extra: Any) -> dict[str, Any]:
    answer = await api.post(messages_url(visit_id), json={"body": text, **extra}, headers=who)
    assert answer.status_code == 201, answer.text
    message: dict[str, Any] = answer.json()
    return message


async def upload(
    api: httpx.AsyncClient, who: dict[str, str], visit_id: str, kind: str, data: bytes, content_type: str, **fields: str
) -> httpx.Response:
    return await api.post(
        messages_url(visit_id),
        data={"kind": kind, **fields},
        files={"file": ("upload.bin", data, content_type)},
        headers=who,
    )


async def test_history_is_oldest_first_in_pages_with_sender_and_time(
    api: httpx.AsyncClient, chat: ConsultVisit, sessions: Sessions, settings: Settings
) -> None:
    patient, doctor = await login(api, chat.patient_user), await login(api, chat.doctor_user)
    sent = [
        await say(api, patient, chat.visit_id, "医生您好，我这两天胃胀好些了。"),
        await say(api, doctor, chat.visit_id, "大便怎么样？"),
        await say(api, patient, chat.visit_id, "还是偏溏。"),
    ]
    assert [m["sender_role"] for m in sent] == ["patient", "doctor", "patient"]
    assert sent[1]["sender_user_id"] == chat.doctor_user
    assert sent[0]["id"] < sent[1]["id"] < sent[2]["id"]

    first = (await api.get(messages_url(chat.visit_id), params={"limit": 2}, headers=doctor)).json()
    assert [m["body"] for m in first["items"]] == ["医生您好，我这两天胃胀好些了。", "大便怎么样？"]
    assert first["has_more"] is True and first["next_after"] == sent[1]["id"]
    rest = (await api.get(messages_url(chat.visit_id), params={"after": first["next_after"]}, headers=patient)).json()
    assert [m["id"] for m in rest["items"]] == [sent[2]["id"]]
    assert rest["has_more"] is False
    assert datetime.fromisoformat(rest["items"][0]["created_at"]) > datetime.now(UTC) - timedelta(minutes=1)

    # At rest the body is ciphertext, bound to this visit.
    async with sessions() as session:
        stored = await session.scalar(
            select(col(ConsultMessage.body_enc)).where(col(ConsultMessage.id) == sent[2]["id"])
        )
    assert stored is not None and stored.startswith("sm4g1:") and "偏溏" not in stored
    cipher = FieldCipher(settings.pii_key, settings.blind_index_key)
    assert cipher.decrypt(body_column(chat.visit_id), stored) == "还是偏溏。"
    with pytest.raises(ValueError):
        cipher.decrypt(body_column("another-visit"), stored)


async def test_a_resent_client_message_is_stored_once(
    api: httpx.AsyncClient, chat: ConsultVisit, sessions: Sessions
) -> None:
    patient = await login(api, chat.patient_user)
    first = await say(api, patient, chat.visit_id, "舌苔照片稍后发您", client_msg_id="c-1")
    again = await api.post(
        messages_url(chat.visit_id), json={"body": "舌苔照片稍后发您", "client_msg_id": "c-1"}, headers=patient
    )
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first
    # The same client id from the other participant is their own message.
    doctor = await login(api, chat.doctor_user)
    assert (await say(api, doctor, chat.visit_id, "好的", client_msg_id="c-1"))["id"] != first["id"]
    async with sessions() as session:
        rows = await session.scalars(
            select(col(ConsultMessage.id)).where(col(ConsultMessage.visit_id) == chat.visit_id)
        )
        assert len(rows.all()) == 2


async def test_media_round_trip_is_encrypted_at_rest_and_digest_checked(
    api: httpx.AsyncClient, chat: ConsultVisit, sessions: Sessions
) -> None:
    patient, doctor = await login(api, chat.patient_user), await login(api, chat.doctor_user)
    for kind, data, content_type in (("image", PNG, "image/png"), ("voice", AMR, "audio/amr")):
        answer = await upload(api, patient, chat.visit_id, kind, data, content_type, client_msg_id=f"m-{kind}")
        assert answer.status_code == 201, answer.text
        message = answer.json()
        assert message["kind"] == kind and message["body"] is None
        assert message["media"]["sm3"] == sm3_hex(data)
        assert message["media"]["size_bytes"] == len(data)
        assert message["media"]["content_type"] == content_type

        download = await api.get(message["media"]["url"], headers=doctor)
        assert download.status_code == 200
        assert download.headers["content-type"] == content_type
        assert download.headers["x-content-type-options"] == "nosniff"
        assert download.content == data
        assert sm3_hex(download.content) == download.headers["X-Content-SM3"] == message["media"]["sm3"]

        async with sessions() as session:
            media_id = await session.scalar(
                select(col(ConsultMessage.media_id)).where(col(ConsultMessage.id) == message["id"])
            )
            stored = await session.get(ConsultMedia, media_id)
        assert stored is not None and data[16:64] not in stored.data_enc and len(stored.data_enc) == len(data) + 28

    # A repeat of an upload keeps the first file.
    again = await upload(api, patient, chat.visit_id, "image", PNG, "image/png", client_msg_id="m-image")
    assert again.status_code == 200
    text = await say(api, patient, chat.visit_id, "没有附件")
    assert_problem(
        await api.get(f"{messages_url(chat.visit_id)}/{text['id']}/media", headers=patient), 404, "NOT_FOUND"
    )


async def test_media_refusals(api: httpx.AsyncClient, chat: ConsultVisit) -> None:
    patient = await login(api, chat.patient_user)
    big_image = b"\xff\xd8\xff" + bytes(5 * 1024 * 1024)
    big_voice = b"#!AMR\n" + bytes(2 * 1024 * 1024)
    body = assert_problem(
        await upload(api, patient, chat.visit_id, "image", big_image, "image/jpeg"), 413, "MEDIA_TOO_LARGE"
    )
    assert body["limit_bytes"] == 5 * 1024 * 1024
    assert_problem(await upload(api, patient, chat.visit_id, "voice", big_voice, "audio/amr"), 413, "MEDIA_TOO_LARGE")
    # Past what any upload may be, the request is refused before it is read.
    huge = await upload(api, patient, chat.visit_id, "image", bytes(6 * 1024 * 1024), "image/jpeg")
    assert_problem(huge, 413, "PAYLOAD_TOO_LARGE")

    gif = await upload(api, patient, chat.visit_id, "image", b"GIF89a" + bytes(64), "image/gif")
    assert "image/png" in assert_problem(gif, 415, "MEDIA_TYPE_NOT_ALLOWED")["allowed"]
    assert_problem(await upload(api, patient, chat.visit_id, "voice", PNG, "image/png"), 415, "MEDIA_TYPE_NOT_ALLOWED")
    html = b"<html><script>alert(1)</script></html>"
    assert_problem(await upload(api, patient, chat.visit_id, "image", html, "image/png"), 422, "MEDIA_CONTENT_MISMATCH")
    assert_problem(await upload(api, patient, chat.visit_id, "image", b"", "image/png"), 422, "MEDIA_EMPTY")
    no_kind = await api.post(messages_url(chat.visit_id), files={"file": ("a.png", PNG, "image/png")}, headers=patient)
    assert assert_problem(no_kind, 422, "VALIDATION_FAILED")["errors"][0]["field"] == "body.kind"
    no_file = await api.post(
        messages_url(chat.visit_id), data={"kind": "image"}, files={"other": ("a", b"x")}, headers=patient
    )
    assert assert_problem(no_file, 422, "VALIDATION_FAILED")["errors"][0]["field"] == "body.file"
    plain = await api.post(
        messages_url(chat.visit_id), content=b"hi", headers={**patient, "Content-Type": "text/plain"}
    )
    assert_problem(plain, 415, "UNSUPPORTED_MEDIA_TYPE")
    blank = await api.post(messages_url(chat.visit_id), json={"body": "   "}, headers=patient)
    assert assert_problem(blank, 422, "VALIDATION_FAILED")["errors"][0]["message"] == "消息内容不能为空"
    # Nothing of the refused requests was stored.
    assert (await api.get(messages_url(chat.visit_id), headers=patient)).json()["items"] == []


async def test_only_the_visits_patient_and_doctor_take_part(
    api: httpx.AsyncClient, chat: ConsultVisit, sessions: Sessions
) -> None:
    patient = await login(api, chat.patient_user)
    message = await upload(api, patient, chat.visit_id, "image", PNG, "image/png")
    media_url = message.json()["media"]["url"]
    other_patient, _ = await make_user(sessions, Role.PATIENT)
    other_doctor, _ = await make_user(sessions, Role.DOCTOR)
    admin, _ = await make_user(sessions, Role.ADMIN)
    attempts = [
        ("GET", messages_url(chat.visit_id), None),
        ("POST", messages_url(chat.visit_id), {"body": "你好"}),
        ("GET", media_url, None),
        ("POST", f"{messages_url(chat.visit_id)}/read", {"up_to": 1}),
        ("POST", f"/api/v1/visits/{chat.visit_id}/calls", {"media": "video"}),
    ]
    for stranger in (other_patient, other_doctor):
        headers = await login(api, stranger)
        for method, url, body in attempts:
            assert_problem(await api.request(method, url, json=body, headers=headers), 404, "NOT_FOUND")
    headers = await login(api, admin)
    for method, url, body in attempts:
        assert_problem(await api.request(method, url, json=body, headers=headers), 403, "NOT_A_PARTICIPANT")
    assert_problem(await api.get(messages_url("no-such-visit"), headers=patient), 404, "NOT_FOUND")
    assert_problem(await api.get(messages_url(chat.visit_id)), 401, "UNAUTHORIZED")


async def test_read_receipts_move_forward_only(api: httpx.AsyncClient, chat: ConsultVisit) -> None:
    patient, doctor = await login(api, chat.patient_user), await login(api, chat.doctor_user)
    first = await say(api, patient, chat.visit_id, "第一条")
    second = await say(api, patient, chat.visit_id, "第二条")
    reads = (await api.post(f"{messages_url(chat.visit_id)}/read", json={"up_to": second["id"]}, headers=doctor)).json()
    assert [(r["user_id"], r["role"], r["last_read_id"]) for r in reads] == [(chat.doctor_user, "doctor", second["id"])]
    back = await api.post(f"{messages_url(chat.visit_id)}/read", json={"up_to": first["id"]}, headers=doctor)
    assert back.json()[0]["last_read_id"] == second["id"]
    # Beyond the last message it stops at the last message.
    await api.post(f"{messages_url(chat.visit_id)}/read", json={"up_to": second["id"] + 10_000}, headers=patient)
    history = (await api.get(messages_url(chat.visit_id), headers=patient)).json()
    assert {r["user_id"]: r["last_read_id"] for r in history["reads"]} == {
        chat.doctor_user: second["id"],
        chat.patient_user: second["id"],
    }


@pytest.mark.parametrize(
    ("stage", "ended_ago", "status", "code"),
    [
        ("awaiting_payment", None, 409, "CONSULT_NOT_OPEN"),
        ("waiting_doctor", None, 201, None),
        ("finished", timedelta(hours=2), 201, None),
        ("aborted", timedelta(hours=2), 201, None),
        ("finished", timedelta(hours=25), 409, "CONSULT_CLOSED"),
        ("cancelled", timedelta(minutes=5), 409, "CONSULT_CLOSED"),
        ("no_show", timedelta(minutes=5), 409, "CONSULT_CLOSED"),
    ],
)
async def test_writable_from_payment_until_a_day_after_the_end(
    api: httpx.AsyncClient, sessions: Sessions, stage: str, ended_ago: timedelta | None, status: int, code: str | None
) -> None:
    updated = datetime.now(UTC) - (ended_ago or timedelta())
    chat = await make_consult_visit(sessions, stage=stage, updated_at=updated)
    patient = await login(api, chat.patient_user)
    answer = await api.post(messages_url(chat.visit_id), json={"body": "请问药还要吃几天？"}, headers=patient)
    if code is None:
        assert answer.status_code == status, answer.text
    else:
        assert_problem(answer, status, code)
    # Reading stays open whatever the stage.
    assert (await api.get(messages_url(chat.visit_id), headers=patient)).status_code == 200


async def test_call_start_join_and_end_are_recorded(api: httpx.AsyncClient, app: FastAPI, chat: ConsultVisit) -> None:
    patient, doctor = await login(api, chat.patient_user), await login(api, chat.doctor_user)
    calls = f"/api/v1/visits/{chat.visit_id}/calls"
    started = await api.post(calls, json={"media": "video"}, headers=doctor)
    assert started.status_code == 201, started.text
    call = started.json()
    joined = await api.post(calls, json={"media": "video"}, headers=patient)
    assert joined.status_code == 200
    assert joined.json()["call_id"] == call["call_id"] and joined.json()["room"] == call["room"]

    rtc: SandboxRtc = app.state.ctx.adapters.rtc
    doctor_claims = rtc.verify(call["token"])
    patient_claims = rtc.verify(joined.json()["token"])
    assert (doctor_claims["room"], doctor_claims["sub"], doctor_claims["role"]) == (
        call["room"]["room_id"],
        chat.doctor_user,
        "doctor",
    )
    assert (patient_claims["sub"], patient_claims["role"]) == (chat.patient_user, "patient")

    ended = await api.post(f"{calls}/{call['call_id']}/end", headers=patient)
    assert ended.status_code == 200, ended.text
    assert ended.json()["ended_by"] == chat.patient_user and ended.json()["duration_s"] >= 0
    assert (await api.post(f"{calls}/{call['call_id']}/end", headers=doctor)).json() == ended.json()
    assert_problem(await api.post(f"{calls}/call-nope/end", headers=doctor), 404, "NOT_FOUND")

    history = (await api.get(messages_url(chat.visit_id), headers=patient)).json()["items"]
    assert [(m["kind"], m["call_id"], m["sender_user_id"]) for m in history] == [
        ("call", call["call_id"], chat.doctor_user),
        ("call", call["call_id"], chat.patient_user),
    ]
    assert history[0]["body"] == "视频通话已开始" and history[1]["body"].startswith("视频通话已结束，时长")

    # The next call is a new one, in its own room.
    again = await api.post(calls, json={"media": "audio"}, headers=patient)
    assert again.status_code == 201 and again.json()["room"]["room_id"] != call["room"]["room_id"]


async def test_calls_only_during_the_consultation_and_as_paid_for(api: httpx.AsyncClient, sessions: Sessions) -> None:
    for stage, service, media, code in (
        ("waiting_doctor", "video", "video", "CALL_NOT_OPEN"),
        ("finished", "video", "audio", "CALL_NOT_OPEN"),
        ("in_consult", "text", "audio", "CALL_NOT_INCLUDED"),
        ("in_consult", "phone", "video", "CALL_NOT_INCLUDED"),
    ):
        chat = await make_consult_visit(sessions, stage=stage, service_type=service)
        doctor = await login(api, chat.doctor_user)
        answer = await api.post(f"/api/v1/visits/{chat.visit_id}/calls", json={"media": media}, headers=doctor)
        assert_problem(answer, 409, code)
    phone = await make_consult_visit(sessions, service_type="phone")
    doctor = await login(api, phone.doctor_user)
    answer = await api.post(f"/api/v1/visits/{phone.visit_id}/calls", json={"media": "audio"}, headers=doctor)
    assert answer.status_code == 201 and answer.json()["media"] == "audio"

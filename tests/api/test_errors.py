"""Every error is an RFC 9457 problem document; nothing a client sends produces an unexplained 500."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from api.errors import Problem
from models.common import Role
from tests.api.helpers import login, make_user

PROBLEM = "application/problem+json"
_MEMBERS = {"type", "title", "status", "detail", "code", "instance"}


class Order(BaseModel):
    quantity: int = Field(ge=1)
    phone: str = Field(pattern=r"^1\d{10}$")


def _probe_routes(app: FastAPI) -> None:
    router = APIRouter(prefix="/api/v1/_probe")

    @router.post("/order")
    async def order(body: Order) -> dict[str, int]:
        return {"quantity": body.quantity}

    @router.get("/problem")
    async def problem() -> None:
        raise Problem(409, "SLOT_TAKEN", "号源已被预约", "该号源刚刚被其他患者预约。", slot_id="s-1")

    @router.get("/crash")
    async def crash() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    app.include_router(router)


def _assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert _MEMBERS <= body.keys()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].startswith("urn:qihuang:problem:")
    return body


async def test_unknown_route_and_wrong_method(api) -> None:
    body = _assert_problem(await api.get("/api/v1/no-such-thing"), 404, "NOT_FOUND")
    assert body["instance"] == "/api/v1/no-such-thing"
    assert body["title"] == "请求的资源不存在"
    response = await api.delete("/api/v1/departments")
    _assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["allow"]


async def test_validation_failure_lists_fields_in_chinese(app, api) -> None:
    _probe_routes(app)
    response = await api.post("/api/v1/_probe/order", json={"quantity": 0, "phone": "12345"})
    body = _assert_problem(response, 422, "VALIDATION_FAILED")
    fields = {error["field"]: error for error in body["errors"]}
    assert set(fields) == {"body.quantity", "body.phone"}
    assert fields["body.quantity"]["message"] == "不能小于 1"
    assert fields["body.phone"]["message"] == "格式不正确"
    assert "body.quantity" in body["detail"]

    missing = _assert_problem(await api.post("/api/v1/_probe/order", json={}), 422, "VALIDATION_FAILED")
    assert {error["message"] for error in missing["errors"]} == {"必填"}

    query = _assert_problem(await api.get("/api/v1/doctors", params={"date": "2025-13-40"}), 422, "VALIDATION_FAILED")
    assert query["errors"][0]["field"] == "query.date"


async def test_malformed_json_is_a_400_problem(app, api) -> None:
    _probe_routes(app)
    response = await api.post(
        "/api/v1/_probe/order", content=b'{"quantity": 1, "phone": ', headers={"Content-Type": "application/json"}
    )
    body = _assert_problem(response, 400, "MALFORMED_JSON")
    assert "phone" not in str(body)
    not_an_object = await api.post("/api/v1/_probe/order", json=[1, 2])
    _assert_problem(not_an_object, 422, "VALIDATION_FAILED")


async def test_problem_carries_its_extra_members(app, api) -> None:
    _probe_routes(app)
    body = _assert_problem(await api.get("/api/v1/_probe/problem"), 409, "SLOT_TAKEN")
    assert body["title"] == "号源已被预约"
    assert body["detail"] == "该号源刚刚被其他患者预约。"
    assert body["slot_id"] == "s-1"


async def test_unexpected_error_is_500_without_internals_and_is_logged_with_the_request_id(app, api) -> None:
    _probe_routes(app)
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        response = await api.get("/api/v1/_probe/crash", headers={"X-Request-ID": "req-crash-1"})
    body = _assert_problem(response, 500, "INTERNAL_ERROR")
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    assert body["request_id"] == "req-crash-1"
    assert response.headers["x-request-id"] == "req-crash-1"
    errors = [entry for entry in logs if entry["event"] == "unhandled_error"]
    assert errors and errors[0]["request_id"] == "req-crash-1"
    access = [entry for entry in logs if entry["event"] == "request"]
    assert access[-1]["status"] == 500


async def test_request_id_is_echoed_or_minted(api) -> None:
    echoed = await api.get("/api/v1/departments", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    minted = await api.get("/api/v1/departments", headers={"X-Request-ID": "bad id\twith spaces"})
    assert minted.headers["x-request-id"] != "bad id\twith spaces"
    assert len(minted.headers["x-request-id"]) == 32


async def test_access_log_has_actor_and_no_body_or_query(api, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.PATIENT)
    headers = await login(api, user_id)
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        await api.put(
            "/api/v1/me/identity?note=secret-query",
            headers={**headers, "X-Request-ID": "req-log-1"},
            json={"name": "王小明", "id_card_no": "11010519491231002X", "phone": "13912345678"},
        )
    (line,) = [entry for entry in logs if entry["event"] == "request"]
    assert line["method"] == "PUT"
    assert line["path"] == "/api/v1/me/identity"
    assert line["status"] == 202
    assert line["actor"] == user_id
    assert line["request_id"] == "req-log-1"
    assert isinstance(line["ms"], float)
    text = str(logs)
    for secret in ("王小明", "11010519491231002X", "13912345678", "secret-query"):
        assert secret not in text


async def test_text_postgres_cannot_store_is_a_400_not_a_500(api) -> None:
    _assert_problem(await api.get("/api/v1/doctors/bad%00id"), 400, "INVALID_CHARACTERS")
    response = await api.post("/api/v1/auth/token", data={"username": "x\x00y", "password": "p"})
    _assert_problem(response, 400, "INVALID_CHARACTERS")


async def test_oversized_body_is_413(api) -> None:
    declared = await api.post("/api/v1/auth/token", content=b"x" * (1024 * 1024 + 1))
    _assert_problem(declared, 413, "PAYLOAD_TOO_LARGE")

    async def chunks():
        for _ in range(20):
            yield b"a=" + b"x" * 65536 + b"&"

    streamed = await api.post(
        "/api/v1/auth/token", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    _assert_problem(streamed, 413, "PAYLOAD_TOO_LARGE")


async def test_openapi_documents_problem_answers(api) -> None:
    document = (await api.get("/openapi.json")).json()
    assert document["info"]["title"] == "岐黄 Qihuang API"
    assert "ProblemDetails" in document["components"]["schemas"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    not_found = document["paths"]["/api/v1/doctors/{doctor_id}"]["get"]["responses"]["404"]
    assert not_found["content"]["application/problem+json"]["schema"]["$ref"].endswith("/ProblemDetails")
    for path_item in document["paths"].values():
        for operation in path_item.values():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == [PROBLEM]
    assert (await api.get("/docs")).status_code == 200

"""RFC 9457 problem details (`application/problem+json`) for every error the API answers with.

Each problem carries a stable machine `code` (clients branch on it) and a zh-CN `title`/`detail` (users read it).
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra

    def body(self, instance: str) -> dict[str, Any]:
        return problem_body(self.status, self.code, self.title, self.detail, instance=instance, **self.extra)


def problem_body(
    status: int, code: str, title: str, detail: str | None = None, *, instance: str, **extra: Any
) -> dict[str, Any]:
    return {
        **extra,
        "type": f"urn:qihuang:problem:{code.lower().replace('_', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
    }


def problem_response(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=dict(headers or {}))


def internal_error_response(path: str, request_id: str) -> JSONResponse:
    """The answer to an unexpected failure: nothing about the cause, only the id to quote to support."""
    body = problem_body(
        500,
        "INTERNAL_ERROR",
        "服务器内部错误",
        f"服务暂时出现问题，请稍后重试；如需协助，请提供请求编号 {request_id}。",
        instance=path,
        request_id=request_id,
    )
    return problem_response(500, body)


# Framework-raised HTTP errors (unknown route, wrong method, body too large, …) and their stable codes.
_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("BAD_REQUEST", "请求有误"),
    401: ("UNAUTHORIZED", "未登录或登录已失效"),
    403: ("FORBIDDEN", "无权执行此操作"),
    404: ("NOT_FOUND", "请求的资源不存在"),
    405: ("METHOD_NOT_ALLOWED", "不支持该请求方法"),
    406: ("NOT_ACCEPTABLE", "无法提供所要求的响应格式"),
    409: ("CONFLICT", "请求与当前状态冲突"),
    413: ("PAYLOAD_TOO_LARGE", "请求内容过大"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "不支持的请求内容类型"),
    429: ("TOO_MANY_REQUESTS", "请求过于频繁，请稍后再试"),
}

# zh-CN wording for the pydantic error types a client can trigger; others fall back to pydantic's message.
_FIELD_MESSAGES: dict[str, str] = {
    "missing": "必填",
    "string_type": "应为字符串",
    "string_too_short": "长度不能少于 {min_length} 个字符",
    "string_too_long": "长度不能超过 {max_length} 个字符",
    "string_pattern_mismatch": "格式不正确",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "bool_type": "应为布尔值",
    "bool_parsing": "应为布尔值（true/false）",
    "date_type": "应为日期（YYYY-MM-DD）",
    "date_parsing": "应为日期（YYYY-MM-DD）",
    "date_from_datetime_parsing": "应为日期（YYYY-MM-DD）",
    "datetime_type": "应为时间（ISO 8601）",
    "datetime_parsing": "应为时间（ISO 8601）",
    "datetime_from_date_parsing": "应为时间（ISO 8601）",
    "greater_than": "必须大于 {gt}",
    "greater_than_equal": "不能小于 {ge}",
    "less_than": "必须小于 {lt}",
    "less_than_equal": "不能大于 {le}",
    "literal_error": "取值应为 {expected}",
    "enum": "取值应为 {expected}",
    "extra_forbidden": "不允许的字段",
    "dict_type": "应为 JSON 对象",
    "model_type": "应为 JSON 对象",
    "model_attributes_type": "应为 JSON 对象",
    "list_type": "应为数组",
}


def _field_error(error: Mapping[str, Any]) -> dict[str, str]:
    kind = str(error.get("type", ""))
    context = error.get("ctx") or {}
    if kind == "value_error" and "error" in context:
        # Our own validators raise ValueError with a zh-CN message.
        message = str(context["error"])
    elif kind in _FIELD_MESSAGES:
        try:
            message = _FIELD_MESSAGES[kind].format(**context)
        except (KeyError, IndexError):
            message = str(error.get("msg", ""))
    else:
        message = str(error.get("msg", ""))
    return {"field": ".".join(str(part) for part in error.get("loc", ())), "message": message, "type": kind}


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc.status, exc.body(request.url.path), exc.headers)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    # The body is never echoed back or logged: it may hold PII.
    if any(error.get("type") == "json_invalid" for error in errors):
        body = problem_body(
            400, "MALFORMED_JSON", "请求体不是有效的 JSON", "请检查请求体的 JSON 格式。", instance=request.url.path
        )
        return problem_response(400, body)
    fields = [_field_error(error) for error in errors]
    body = problem_body(
        422,
        "VALIDATION_FAILED",
        "请求参数校验失败",
        "、".join(f"{item['field']}：{item['message']}" for item in fields),
        instance=request.url.path,
        errors=fields,
    )
    return problem_response(422, body)


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code, title = _HTTP_CODES.get(exc.status_code, (f"HTTP_{exc.status_code}", HTTPStatus(exc.status_code).phrase))
    body = problem_body(exc.status_code, code, title, instance=request.url.path)
    return problem_response(exc.status_code, body, exc.headers)


# PostgreSQL refuses text it cannot store (a NUL character, say) that a client put in a path, query or body.
_BAD_TEXT_SQLSTATES = frozenset({"22021", "22P05"})


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    """Through the ORM (`DBAPIError`, the driver's error in `orig`) or the raw pool (asyncpg's own error)."""
    assert isinstance(exc, DBAPIError | asyncpg.PostgresError)
    error = exc.orig if isinstance(exc, DBAPIError) else exc
    if getattr(error, "sqlstate", None) not in _BAD_TEXT_SQLSTATES:
        raise exc
    body = problem_body(
        400, "INVALID_CHARACTERS", "请求包含无效字符", "请删除请求中的控制字符后重试。", instance=request.url.path
    )
    return problem_response(400, body)


def install_error_handlers(app: FastAPI) -> None:
    """Unexpected exceptions are answered by the request middleware (see api.middleware), which knows the request id."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_exception)
    app.add_exception_handler(DBAPIError, _on_database_error)
    app.add_exception_handler(asyncpg.PostgresError, _on_database_error)


class FieldError(BaseModel):
    field: str = Field(description="出错字段的位置，以点分隔，如 body.phone", examples=["body.phone"])
    message: str = Field(examples=["格式不正确"])
    type: str = Field(description="pydantic 错误类型", examples=["string_pattern_mismatch"])


class ProblemDetails(BaseModel):
    """The problem document (RFC 9457). Problems may carry more members, named in each operation's docs."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:qihuang:problem:not-found"])
    title: str = Field(examples=["请求的资源不存在"])
    status: int = Field(examples=[404])
    detail: str | None = Field(default=None, examples=["医生不存在"])
    code: str = Field(description="稳定的机器可读错误码", examples=["NOT_FOUND"])
    instance: str = Field(examples=["/api/v1/doctors/d-404"])
    errors: list[FieldError] | None = Field(default=None, description="仅 VALIDATION_FAILED：逐字段的错误")


PROBLEM_SCHEMA_REF = "#/components/schemas/ProblemDetails"

_DESCRIPTIONS = {
    400: "请求有误（如 JSON 格式错误、幂等键无效）",
    401: "未登录或登录已失效",
    403: "无权执行此操作",
    404: "资源不存在",
    409: "与当前状态冲突",
    422: "参数校验失败",
    503: "依赖的服务不可用",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem answers for the given statuses."""
    return {
        status: {
            "description": _DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
        }
        for status in statuses
    }


# The common set; routers pick a subset with `problem_responses(...)` where fewer apply.
responses = problem_responses(400, 401, 403, 404, 409, 422)

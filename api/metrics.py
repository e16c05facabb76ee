"""Prometheus metrics (8.5.8.5): every request by route template and status, the gateway's refusals, rate limiting and
circuit breakers; served at GET /metrics.

Labels stay few and bounded: the route *template* (`/api/v1/prescriptions/{prescription_id}`), never the raw path, so
a scan of random URLs cannot blow up the series count; unknown methods fold into "OTHER"; applications are labelled
only where the app is a registered one.

With several uvicorn/gunicorn worker processes each process has its own registry, and a scrape reaches one of them.
Set PROMETHEUS_MULTIPROC_DIR (an empty directory per host, cleared at start) before the processes start:
prometheus_client then keeps each process's values there and /metrics sums them across processes.
"""

from __future__ import annotations

import hmac
import time
from typing import Annotated

from fastapi import APIRouter, Header, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import SettingsDep
from api.errors import Problem
from api.resilience import BreakerState

HTTP_REQUESTS = Counter(
    "qihuang_http_requests",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "qihuang_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
GATEWAY_REFUSALS = Counter("qihuang_gateway_refusals", "Integration calls refused by the gateway, by code", ["code"])
GATEWAY_RATE_LIMITED = Counter(
    "qihuang_gateway_rate_limited", "Integration calls refused for the app's rate limit, by app", ["app"]
)
GATEWAY_ALERTS = Counter("qihuang_gateway_alerts", "Illegal-access alerts raised to the admins")
BREAKER_STATE = Gauge(
    "qihuang_circuit_breaker_state",
    "Circuit breaker per dependency: 0 closed, 1 half-open, 2 open",
    ["dependency"],
    multiprocess_mode="max",
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "<unmatched>"


def breaker_changed(dependency: str, state: BreakerState) -> None:
    BREAKER_STATE.labels(dependency).set(int(state))


def _route(scope: Scope) -> str:
    """The matched route's full template. The router leaves the route in the scope (requests it never saw, refused by
    a middleware or for an unknown path, have none), but FastAPI routers included with a prefix keep their template
    without it; the prefix is what the path has before the filled-in template."""
    template = getattr(scope.get("route"), "path_format", None)
    if template is None:
        return UNMATCHED_ROUTE
    try:
        filled = template.format(**{name: str(value) for name, value in scope.get("path_params", {}).items()})
    except (KeyError, IndexError, ValueError):
        return template
    path: str = scope["path"]
    return path[: len(path) - len(filled)] + template if path.endswith(filled) else template


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = _route(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)


router = APIRouter(tags=["monitoring"])


@router.get("/metrics", include_in_schema=False)
async def metrics(settings: SettingsDep, authorization: Annotated[str, Header()] = "") -> Response:
    if settings.metrics_token and not hmac.compare_digest(
        authorization.encode(), f"Bearer {settings.metrics_token}".encode()
    ):
        raise Problem(
            401, "UNAUTHORIZED", "未登录或登录已失效", "请提供监控令牌。", headers={"WWW-Authenticate": "Bearer"}
        )
    registry = REGISTRY
    if settings.prometheus_multiproc_dir:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=settings.prometheus_multiproc_dir)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

"""Refused integration calls (8.5.8.4–8.5.8.5): the stable codes, and what happens to each refusal.

Every refusal is counted in Prometheus by code. In PostgreSQL it is counted per app per minute; the first few of a
minute are audited and logged at WARNING (so an attack cannot flood the audit table or the logs), and the one that
reaches the alert threshold notifies the admins (a GatewayAlert flow; its id makes it once per app per minute even
with many API processes).
"""

from __future__ import annotations

import asyncio

import structlog
from starlette.types import Scope
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.context import AppContext
from api.errors import Problem
from api.gateway import store
from api.gateway.protocol import APP_ID_PATTERN
from api.metrics import GATEWAY_ALERTS, GATEWAY_REFUSALS
from api.resilience import POSTGRES_OUTAGES, Breakers
from models.integration import GatewayAlert
from workflows.gateway_alert import GatewayAlertWorkflow, gateway_alert_workflow_id

# Starting the alert flow must not hold a refused request for long when Temporal is slow.
_ALERT_START_TIMEOUT_S = 3.0

_TITLES = {
    "APP_UNKNOWN": (401, "接入应用无效"),
    "TIMESTAMP_SKEW": (401, "请求时间戳无效"),
    "NONCE_INVALID": (401, "请求随机数无效"),
    "NONCE_REUSED": (401, "请求已被使用"),
    "SIGNATURE_INVALID": (401, "签名无效"),
    "SCOPE_DENIED": (403, "无权调用该接口"),
    "BODY_DECRYPTION_FAILED": (400, "请求体解密失败"),
}


def _logger() -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger("api.gateway")


class Refusal(Problem):
    """A call the gateway refuses. `app_id` is the registered app it is counted against, or UNKNOWN_APP."""

    def __init__(self, code: str, detail: str, *, app_id: str = store.UNKNOWN_APP) -> None:
        status, title = _TITLES[code]
        super().__init__(status, code, title, detail)
        self.app_id = app_id


def _claimed_app(scope: Scope) -> str:
    """The X-App-Id the caller sent, if it is a well-formed id; it goes into audits and logs, so nothing else does."""
    for name, value in scope.get("headers", ()):
        if name == b"x-app-id":
            claimed = value.decode("latin-1")
            return claimed if APP_ID_PATTERN.fullmatch(claimed) else "<malformed>"
    return "<none>"


def _printable(path: str) -> str:
    # The decoded path may hold anything the caller percent-encoded; PostgreSQL's JSON refuses NUL, logs want no
    # control characters.
    return "".join(char if char.isprintable() else "\ufffd" for char in path[:200])


async def handle_refusal(ctx: AppContext, breakers: Breakers, scope: Scope, refusal: Refusal) -> None:
    GATEWAY_REFUSALS.labels(refusal.code).inc()
    breaker = breakers.get("postgresql", ctx.settings, POSTGRES_OUTAGES)
    client = scope.get("client")
    request_id = scope.get("state", {}).get("request_id")
    claimed = _claimed_app(scope)
    detail = {
        "code": refusal.code,
        "claimed_app_id": claimed,
        "method": scope["method"],
        "path": _printable(scope["path"]),
    }
    try:
        async with breaker.guard():
            hits, window_start = await store.record_refusal(
                ctx.pg,
                refusal.app_id,
                detail,
                client[0] if client else None,
                request_id,
                ctx.settings.gateway_audit_per_minute,
            )
    except Problem:
        # The refusal stands whether or not it could be written down; the outage has its own breaker and metric.
        _logger().warning("gateway_refusal_not_recorded", **detail)
        return
    if hits <= ctx.settings.gateway_audit_per_minute:
        _logger().warning("gateway_refused", app_id=refusal.app_id, refusals_this_minute=hits, **detail)
    if hits == ctx.settings.gateway_alert_threshold:
        alert = GatewayAlert(app_id=refusal.app_id, window_start=window_start, refusals=hits, last_code=refusal.code)
        await raise_alert(ctx.temporal, ctx.settings.task_queue, alert)


async def raise_alert(temporal: Client, task_queue: str, alert: GatewayAlert) -> None:
    GATEWAY_ALERTS.inc()
    _logger().warning("gateway_alert", **alert.model_dump(mode="json"))
    try:
        async with asyncio.timeout(_ALERT_START_TIMEOUT_S):
            await temporal.start_workflow(
                GatewayAlertWorkflow.run,
                alert,
                id=gateway_alert_workflow_id(alert.app_id, alert.window_start),
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
    except WorkflowAlreadyStartedError:
        pass  # another API process reached the threshold for the same app and minute first
    except (RPCError, TimeoutError):
        # The log line and the metric above remain; Prometheus alerting on them does not depend on Temporal.
        _logger().exception("gateway_alert_not_started", app_id=alert.app_id)

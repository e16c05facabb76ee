"""GatewayAlert (8.5.8.5): tell the admins that an integrated application's calls are being refused in numbers
(forged signatures, replays, unknown apps): an in-app notice and a message through the notifier."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.integration import GatewayAlert
    from workflows.steps import Notices, local


# Refusals of callers naming no known application are counted under this id (api/gateway/store.py).
_UNKNOWN_APP = "-"


def gateway_alert_workflow_id(app_id: str, window_start: datetime) -> str:
    """One alert per application per minute, whichever API process sees the threshold crossed."""
    subject = "unknown" if app_id == _UNKNOWN_APP else app_id
    return f"gateway-alert-{subject}-{window_start:%Y%m%d%H%M}"


@workflow.defn(name="GatewayAlert")
class GatewayAlertWorkflow:
    @workflow.run
    async def run(self, alert: GatewayAlert) -> None:
        notices = Notices()
        notices.send(
            "admins",
            "role:admin",
            "gateway_illegal_access",
            app="未知应用" if alert.app_id == _UNKNOWN_APP else alert.app_id,
            time=local(alert.window_start, "%Y-%m-%d %H:%M"),
            count=str(alert.refusals),
            code=alert.last_code,
        )
        await notices.flush()

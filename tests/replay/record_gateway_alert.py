"""Record the history of the gateway's illegal-access alert under `tests/histories/`, as `tests/replay/record.py` does
for the others (same rules: record only new scenarios; never re-record to make a replay pass).

Run with `.venv/bin/python -m tests.replay.record_gateway_alert`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from models.integration import GatewayAlert
from tests.replay.record import Recorder, main
from workflows.gateway_alert import GatewayAlertWorkflow, gateway_alert_workflow_id


async def admins_notified(recorder: Recorder) -> None:
    async with recorder.harness("gateway-alert") as harness:
        alert = GatewayAlert(
            app_id="ia-recorded",
            window_start=datetime(2026, 11, 28, 2, 15, tzinfo=UTC),
            refusals=10,
            last_code="NONCE_REUSED",
        )
        workflow_id = gateway_alert_workflow_id(alert.app_id, alert.window_start)
        await recorder.client.execute_workflow(
            GatewayAlertWorkflow.run, alert, id=workflow_id, task_queue=harness.queue
        )
        await recorder.save(workflow_id, "GatewayAlert-admins_notified")


SCENARIOS = {"GatewayAlert-admins_notified": admins_notified}


if __name__ == "__main__":
    main(SCENARIOS)

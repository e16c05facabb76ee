"""The day's online revisit and prescription reach the supervision platform (8.6.6): the whole journey over the HTTP
API, then an admin uploads the day; the sandbox platform accepts both records, holds the versions sent, and a second
upload of the day sends nothing it already has."""

from __future__ import annotations

from datetime import datetime

from temporalio.client import Client

from activities.adapters.supervision.sandbox import SandboxSupervision
from models.common import HOSPITAL_TZ
from models.supervision import SupervisionKind
from workers.journey import Journey
from workers.seed import DEMO_HIS_DIAGNOSES, DEMO_IDENTITIES


async def test_a_days_revisit_and_prescription_are_uploaded_once(make_stack, client: Client) -> None:  # type: ignore[no-untyped-def]
    stack = await make_stack()
    journey = Journey(stack.http)
    _, disease, doctor = DEMO_HIS_DIAGNOSES["demo-patient"]
    await journey.happy_path(DEMO_IDENTITIES["demo-patient"], doctor, disease)
    visit_id = journey.ids["visit"].removeprefix("visit-")
    rx_id = journey.ids["prescription"].removeprefix("rx-")
    day = datetime.now(HOSPITAL_TZ).date().isoformat()

    async def upload() -> list[str]:
        started = await journey.call(
            "POST", "/admin/supervision/uploads", journey.admin, expected=202, json={"day": day}
        )
        return started["workflow_ids"]

    async def answers() -> dict[str, dict]:
        found = {}
        for record_id in (visit_id, rx_id):
            page = await journey.call(
                "GET", "/admin/supervision/records", journey.admin, params={"record_id": record_id}
            )
            found.update({item["record_id"]: item for item in page["items"]})
        return found

    async def finished(workflow_ids: list[str]) -> None:
        for workflow_id in workflow_ids:
            await journey.until(
                f"upload {workflow_id}",
                lambda workflow_id=workflow_id: client.get_workflow_handle(workflow_id).describe(),
                lambda described: described.close_time is not None,
            )

    first = await upload()
    await finished(first)
    answered = await answers()
    assert {(a["kind"], a["status"]) for a in answered.values()} == {
        ("revisit", "accepted"),
        ("prescription", "accepted"),
    }
    platform = SandboxSupervision(stack.sessions, stack.settings)
    assert await platform.held(SupervisionKind.REVISIT, visit_id) == answered[visit_id]["digest"]
    assert await platform.held(SupervisionKind.PRESCRIPTION, rx_id) == answered[rx_id]["digest"]

    # Uploaded again: the platform has these versions, so nothing of theirs is sent.
    await finished(await upload())
    assert {record_id: a["sends"] for record_id, a in (await answers()).items()} == {visit_id: 1, rx_id: 1}

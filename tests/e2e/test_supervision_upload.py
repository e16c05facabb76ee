"""The day's online revisit and prescription reach the supervision platform (8.6.6): the whole journey over the HTTP
API, then an admin uploads the day; the sandbox platform accepts both records and holds the versions sent, and a
second upload of the day sends nothing it already has."""

from __future__ import annotations

from activities.adapters.supervision.sandbox import SandboxSupervision
from models.supervision import SupervisionKind
from workers.journey import Journey
from workers.seed import DEMO_HIS_DIAGNOSES, DEMO_IDENTITIES


async def test_a_days_revisit_and_prescription_are_uploaded_once(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = await make_stack()
    journey = Journey(stack.http)
    _, disease, doctor = DEMO_HIS_DIAGNOSES["demo-patient"]
    await journey.happy_path(DEMO_IDENTITIES["demo-patient"], doctor, disease)
    visit_id = journey.ids["visit"].removeprefix("visit-")
    rx_id = journey.ids["prescription"].removeprefix("rx-")

    answered = await journey.report_to_supervision()
    assert {(a["kind"], a["status"], a["sends"]) for a in answered.values()} == {
        ("revisit", "accepted", 1),
        ("prescription", "accepted", 1),
    }
    platform = SandboxSupervision(stack.sessions, stack.settings)
    assert await platform.held(SupervisionKind.REVISIT, visit_id) == answered[visit_id]["digest"]
    assert await platform.held(SupervisionKind.PRESCRIPTION, rx_id) == answered[rx_id]["digest"]
    assert [step.what for step in journey.timeline[-2:]] == [
        "上传监管平台：在线复诊记录",
        "上传监管平台：电子处方及流转信息",
    ]

    # Uploaded again: the platform has these versions, so neither is sent again.
    again = await journey.report_to_supervision()
    assert {record_id: a["sends"] for record_id, a in again.items()} == {visit_id: 1, rx_id: 1}
    assert "未变化" in journey.timeline[-1].detail

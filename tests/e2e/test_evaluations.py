"""A low rating end to end (8.6.7 c): after the whole journey the patient rates the visit two stars; the admins who
handle feedback find it in their inbox, one records the follow-up, the flow ends, and it shows as handled."""

from __future__ import annotations

from temporalio.client import Client

from models.evaluation import EvaluationFollowUpState
from workers.journey import Journey
from workers.seed import DEMO_HIS_DIAGNOSES, DEMO_IDENTITIES
from workflows.evaluation import evaluation_workflow_id


async def test_a_low_rating_reaches_the_feedback_handlers_and_is_followed_up(make_stack, client: Client) -> None:  # type: ignore[no-untyped-def]
    stack = await make_stack()
    journey = Journey(stack.http)
    _, disease, doctor = DEMO_HIS_DIAGNOSES["demo-patient"]
    await journey.happy_path(DEMO_IDENTITIES["demo-patient"], doctor, disease)
    visit_id = journey.ids["visit"].removeprefix("visit-")

    rating = {"doctor_rating": 2, "department_rating": 4, "hospital_rating": 4, "comment": "医生回复较慢。"}
    created = await journey.evaluate(rating)
    assert created["handling"] == "pending"
    inbox = await journey.until(
        "差评通知",
        lambda: journey.call("GET", "/me/notifications", journey.admin),
        lambda page: any(visit_id in item["body"] for item in page["items"] if item["title"] == "收到差评，请及时处理"),
    )
    assert inbox

    url = f"/admin/evaluations/{created['id']}/handling"
    handled = await journey.call("POST", url, journey.admin, json={"note": "已电话回访，患者表示理解"})
    assert (handled["handling"], handled["handling_note"]) == ("handled", "已电话回访，患者表示理解")
    flow = client.get_workflow_handle(evaluation_workflow_id(created["id"]), result_type=EvaluationFollowUpState)
    state = await flow.result()
    assert (state.handled, state.note) == (True, "已电话回访，患者表示理解")
    again = await stack.http.post(f"/api/v1{url}", json={"note": "再次"}, headers=await journey.login(journey.admin))
    assert (again.status_code, again.json()["code"]) == (409, "EVALUATION_HANDLED")

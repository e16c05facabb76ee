"""Evaluations over the API (8.6.7 a–d): who may evaluate which visit and when, what the patient, the doctor, the
public and the admins handling feedback see, hiding with a reason (never deleting), and who may do what. The low
rating's follow-up flow is tested in tests/workflows/test_evaluation.py and end to end in tests/e2e."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, update
from sqlmodel import col
from temporalio.client import Client

from models.common import Role
from models.tables import AuditEvent, Visit
from tests.api.consult_helpers import ConsultVisit, make_consult_visit
from tests.api.helpers import login, make_user
from tests.api.test_booking import assert_problem
from workflows.evaluation import evaluation_workflow_id

GOOD = {"doctor_rating": 5, "department_rating": 4, "hospital_rating": 5, "comment": "问诊很仔细。"}
LOW = {"doctor_rating": 2, "department_rating": 4, "hospital_rating": 3, "comment": "等候时间太长。"}


async def _finished(sessions, **kwargs) -> ConsultVisit:  # type: ignore[no-untyped-def]
    return await make_consult_visit(sessions, stage="finished", **kwargs)


async def _evaluate(api: httpx.AsyncClient, visit: ConsultVisit, body: dict, **headers: str) -> httpx.Response:
    patient = await login(api, visit.patient_user)
    return await api.post(f"/api/v1/visits/{visit.visit_id}/evaluation", json=body, headers=patient | headers)


async def _admin(api: httpx.AsyncClient, sessions) -> tuple[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    user, _ = await make_user(sessions, Role.ADMIN)
    return user, await login(api, user)


async def test_the_patient_evaluates_a_finished_visit_once(api: httpx.AsyncClient, sessions, client: Client) -> None:  # type: ignore[no-untyped-def]
    visit = await _finished(sessions)
    key = {"Idempotency-Key": f"ev-{uuid.uuid4()}"}
    created = await _evaluate(api, visit, GOOD, **key)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["visit_id"], body["doctor_id"], body["doctor_rating"]) == (visit.visit_id, visit.doctor_id, 5)
    assert (body["visibility"], body["handling"]) == ("public", "none")
    # A retried request is the same one; a second evaluation is refused.
    assert (await _evaluate(api, visit, GOOD, **key)).json() == body
    assert_problem(await _evaluate(api, visit, LOW), 409, "EVALUATION_EXISTS")
    # A good rating needs no follow-up: no flow.
    assert not [w async for w in client.list_workflows(f"WorkflowId = '{evaluation_workflow_id(body['id'])}'")]

    patient = await login(api, visit.patient_user)
    assert (await api.get(f"/api/v1/visits/{visit.visit_id}/evaluation", headers=patient)).json() == body
    assert [e["id"] for e in (await api.get("/api/v1/me/evaluations", headers=patient)).json()] == [body["id"]]
    doctor = await login(api, visit.doctor_user)
    assert [e["id"] for e in (await api.get("/api/v1/me/evaluations", headers=doctor)).json()] == [body["id"]]
    assert (await api.get(f"/api/v1/visits/{visit.visit_id}/evaluation", headers=doctor)).status_code == 200


async def test_what_cannot_be_evaluated(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    for stage in ("waiting_doctor", "in_consult", "cancelled", "no_show"):
        visit = await make_consult_visit(sessions, stage=stage)
        assert_problem(await _evaluate(api, visit, GOOD), 409, "VISIT_NOT_FINISHED")
    long_ago = await _finished(sessions, updated_at=datetime.now(UTC) - timedelta(days=31))
    assert_problem(await _evaluate(api, long_ago, GOOD), 409, "EVALUATION_WINDOW_CLOSED")

    visit = await _finished(sessions)
    other = await _finished(sessions)
    stranger = await login(api, other.patient_user)
    answer = await api.post(f"/api/v1/visits/{visit.visit_id}/evaluation", json=GOOD, headers=stranger)
    assert_problem(answer, 404, "NOT_FOUND")
    assert_problem(await api.get(f"/api/v1/visits/{visit.visit_id}/evaluation", headers=stranger), 404, "NOT_FOUND")
    for bad in ({**GOOD, "doctor_rating": 0}, {**GOOD, "hospital_rating": 6}, {**GOOD, "comment": "好" * 501}, {}):
        assert (await _evaluate(api, visit, bad)).status_code == 422, bad
    assert_problem(await api.get(f"/api/v1/visits/{visit.visit_id}/evaluation", headers=stranger), 404, "NOT_FOUND")
    doctor = await login(api, visit.doctor_user)
    refused = await api.post(f"/api/v1/visits/{visit.visit_id}/evaluation", json=GOOD, headers=doctor)
    assert_problem(refused, 403, "FORBIDDEN")


async def test_the_public_sees_public_ones_without_their_authors(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    first = await _finished(sessions)
    assert (await _evaluate(api, first, GOOD)).status_code == 201
    # Two more visits with the same doctor.
    ids = []
    for body in (GOOD, {**GOOD, "doctor_rating": 3}):
        visit = await _finished(sessions)
        await _reassign(sessions, visit, first.doctor_id)
        ids.append((await _evaluate(api, visit, body)).json()["id"])
    _, admin = await _admin(api, sessions)
    hidden = await api.put(
        f"/api/v1/admin/evaluations/{ids[0]}/visibility",
        json={"visibility": "hidden", "reason": "经核实该评价与实际就诊情况不符"},
        headers=admin,
    )
    assert hidden.status_code == 200 and hidden.json()["hidden_reason"] == "经核实该评价与实际就诊情况不符"

    public = (await api.get(f"/api/v1/doctors/{first.doctor_id}/evaluations")).json()
    assert public["total"] == 2 and len(public["items"]) == 2
    assert set(public["items"][0]) == {"doctor_rating", "department_rating", "hospital_rating", "comment", "created_at"}
    assert public["summary"]["count"] == 2 and public["summary"]["doctor_rating"] == 4.0
    assert public["summary"]["stars"] == {"1": 0, "2": 0, "3": 1, "4": 0, "5": 1}
    # The doctor still sees the hidden one.
    doctor = await login(api, first.doctor_user)
    assert len((await api.get("/api/v1/me/evaluations", headers=doctor)).json()) == 3
    assert_problem(await api.get("/api/v1/doctors/doc-nobody/evaluations"), 404, "NOT_FOUND")


async def _reassign(sessions, visit: ConsultVisit, doctor_id: str) -> None:  # type: ignore[no-untyped-def]
    async with sessions() as session, session.begin():
        await session.execute(update(Visit).where(col(Visit.id) == visit.visit_id).values(doctor_id=doctor_id))


async def test_admins_list_hide_with_a_reason_and_cannot_delete(
    api: httpx.AsyncClient, sessions, client: Client
) -> None:  # type: ignore[no-untyped-def]
    admin_user, admin = await _admin(api, sessions)
    low_visit = await _finished(sessions)
    low = (await _evaluate(api, low_visit, LOW)).json()
    assert low["handling"] == "pending"
    # No worker runs here: the follow-up flow waits.
    flow = client.get_workflow_handle(evaluation_workflow_id(low["id"]))
    assert (await flow.describe()).workflow_type == "EvaluationFollowUp"
    await flow.terminate("test over")
    good = (await _evaluate(api, await _finished(sessions), GOOD)).json()

    queue = await api.get(
        "/api/v1/admin/evaluations", params={"handling": "pending", "order": "oldest", "limit": 100}, headers=admin
    )
    assert low["id"] in {item["id"] for item in queue.json()["items"]}
    assert good["id"] not in {item["id"] for item in queue.json()["items"]}
    lowest = await api.get("/api/v1/admin/evaluations", params={"max_rating": 2, "limit": 100}, headers=admin)
    assert all(
        min(i["doctor_rating"], i["department_rating"], i["hospital_rating"]) <= 2 for i in lowest.json()["items"]
    )
    by_doctor = await api.get("/api/v1/admin/evaluations", params={"doctor_id": low_visit.doctor_id}, headers=admin)
    assert [item["id"] for item in by_doctor.json()["items"]] == [low["id"]]

    url = f"/api/v1/admin/evaluations/{good['id']}"
    assert (await api.put(f"{url}/visibility", json={"visibility": "hidden"}, headers=admin)).status_code == 422
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert not [path for path, operations in paths.items() if "evaluation" in path and "delete" in operations]
    await api.put(f"{url}/visibility", json={"visibility": "hidden", "reason": "含有患者隐私信息"}, headers=admin)
    shown = await api.put(f"{url}/visibility", json={"visibility": "public"}, headers=admin)
    assert (shown.json()["visibility"], shown.json()["hidden_reason"]) == ("public", None)
    assert_problem(await api.post(f"{url}/handling", json={"note": "x"}, headers=admin), 409, "NOTHING_TO_HANDLE")
    assert_problem(
        await api.put("/api/v1/admin/evaluations/ev-nobody/visibility", json={"visibility": "public"}, headers=admin),
        404,
        "NOT_FOUND",
    )
    async with sessions() as session:
        actions = (
            await session.scalars(
                select(col(AuditEvent.action))
                .where(col(AuditEvent.actor_user_id) == admin_user, col(AuditEvent.subject_id) == good["id"])
                .order_by(col(AuditEvent.id))
            )
        ).all()
    assert actions == ["evaluation.hidden", "evaluation.published"]


async def test_only_feedback_handlers_reach_the_admin_routes(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    for role in (Role.DOCTOR, Role.PHARMACIST, Role.FINANCE, Role.PATIENT):
        user, _ = await make_user(sessions, role)
        headers = await login(api, user)
        for answer in (
            await api.get("/api/v1/admin/evaluations", headers=headers),
            await api.put("/api/v1/admin/evaluations/ev-x/visibility", json={"visibility": "public"}, headers=headers),
            await api.post("/api/v1/admin/evaluations/ev-x/handling", json={"note": "x"}, headers=headers),
        ):
            assert_problem(answer, 403, "FORBIDDEN")
    assert (await api.get("/api/v1/admin/evaluations")).status_code == 401
    for role in (Role.PHARMACIST, Role.FINANCE):
        user, _ = await make_user(sessions, role)
        assert_problem(await api.get("/api/v1/me/evaluations", headers=await login(api, user)), 403, "FORBIDDEN")

"""The supervision upload as admins holding the institution permission see it (8.6.6): each record's last answer, the
days' counts, and a day's upload started by hand. What the flows send is tested in tests/workflows/test_supervision.py
and tests/activities/test_supervision_steps.py."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlmodel import col
from temporalio.client import Client

from models.common import HOSPITAL_TZ, Role
from models.tables import AuditEvent, SupervisionRecordState
from tests.api.helpers import login, make_user
from tests.api.test_booking import assert_problem
from workflows.supervision import supervision_workflow_id

URL = "/api/v1/admin/supervision"


async def _admin(api: httpx.AsyncClient, sessions) -> tuple[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    user, _ = await make_user(sessions, Role.ADMIN)
    return user, await login(api, user)


async def _answered(sessions, day: date, kind: str, status: str, n: int = 1) -> list[str]:  # type: ignore[no-untyped-def]
    ids = [f"{kind}-{uuid.uuid4().hex[:10]}" for _ in range(n)]
    async with sessions() as session, session.begin():
        for record_id in ids:
            session.add(
                SupervisionRecordState(
                    kind=kind,
                    record_id=record_id,
                    day=day,
                    digest="a" * 64,
                    status=status,
                    code=None if status == "accepted" else "INVALID_RECORD",
                    reason=None if status == "accepted" else "缺少医师姓名或医师执业证书编码",
                    platform_ref="SBSC0001",
                    uploaded_at=datetime.now(UTC),
                )
            )
    return ids


async def test_only_institution_managers(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    today = datetime.now(HOSPITAL_TZ).date().isoformat()
    for role in (Role.DOCTOR, Role.FINANCE, Role.PATIENT, Role.PHARMACIST):
        user, _ = await make_user(sessions, role)
        headers = await login(api, user)
        for answer in (
            await api.get(f"{URL}/uploads", params={"day": today}, headers=headers),
            await api.get(f"{URL}/days", headers=headers),
            await api.get(f"{URL}/records", headers=headers),
            await api.post(f"{URL}/uploads", json={"day": today}, headers=headers),
        ):
            assert_problem(answer, 403, "FORBIDDEN")
    assert (await api.get(f"{URL}/records")).status_code == 401


async def test_records_rejected_first_and_the_days_counts(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    _, admin = await _admin(api, sessions)
    day = date(2001, 1, 1) + timedelta(days=random.randrange(7000))
    accepted = await _answered(sessions, day, "revisit", "accepted", 2)
    [rejected] = await _answered(sessions, day, "revisit", "rejected")
    [prescription] = await _answered(sessions, day, "prescription", "accepted")
    await _answered(sessions, day + timedelta(days=1), "revisit", "rejected")

    listed = await api.get(f"{URL}/records", params={"day": day.isoformat(), "kind": "revisit"}, headers=admin)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["total"] == 3
    assert [item["record_id"] for item in page["items"]] == [rejected, *sorted(accepted)]
    assert page["items"][0]["reason"] == "缺少医师姓名或医师执业证书编码"
    only = await api.get(f"{URL}/records", params={"day": day.isoformat(), "status": "rejected"}, headers=admin)
    assert [item["record_id"] for item in only.json()["items"]] == [rejected]
    one = await api.get(f"{URL}/records", params={"record_id": prescription}, headers=admin)
    assert [(i["kind"], i["status"]) for i in one.json()["items"]] == [("prescription", "accepted")]

    days = await api.get(
        f"{URL}/days", params={"since": day.isoformat(), "until": (day + timedelta(days=1)).isoformat()}, headers=admin
    )
    assert [(d["day"], d["kind"], d["accepted"], d["rejected"]) for d in days.json()] == [
        ((day + timedelta(days=1)).isoformat(), "revisit", 0, 1),
        (day.isoformat(), "prescription", 1, 0),
        (day.isoformat(), "revisit", 2, 1),
    ]


async def test_bad_filters_are_4xx(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    _, admin = await _admin(api, sessions)
    backwards = await api.get(f"{URL}/days", params={"since": "2026-11-20", "until": "2026-11-01"}, headers=admin)
    assert_problem(backwards, 422, "INVALID_PERIOD")
    too_long = await api.get(f"{URL}/days", params={"since": "2020-01-01", "until": "2026-01-01"}, headers=admin)
    assert_problem(too_long, 422, "INVALID_PERIOD")
    for params in ({"kind": "invoice"}, {"status": "lost"}, {"day": "yesterday"}, {"record_id": "x" * 81}):
        answer = await api.get(f"{URL}/records", params=params, headers=admin)
        assert answer.status_code == 422, params
        assert answer.headers["content-type"] == "application/problem+json"


async def test_a_days_upload_started_by_hand(api: httpx.AsyncClient, sessions, client: Client) -> None:  # type: ignore[no-untyped-def]
    admin_user, admin = await _admin(api, sessions)
    tomorrow = datetime.now(HOSPITAL_TZ).date() + timedelta(days=1)
    assert_problem(
        await api.post(f"{URL}/uploads", json={"day": tomorrow.isoformat()}, headers=admin), 422, "DAY_IN_FUTURE"
    )
    for body in ({"day": "2026-11-01", "kinds": ["invoice"]}, {"day": "2026-11-01", "kinds": []}, {"day": "x"}):
        assert (await api.post(f"{URL}/uploads", json=body, headers=admin)).status_code == 422, body
    assert (await api.post(f"{URL}/uploads", json={"day": "2026-11-01", "extra": 1}, headers=admin)).status_code == 422

    # A day of its own on the shared dev server; no worker runs here, so the flows wait.
    day = date(2001, 1, 1) + timedelta(days=random.randrange(7000))
    ids = [supervision_workflow_id("revisit", day), supervision_workflow_id("prescription", day)]
    keyed = admin | {"Idempotency-Key": f"supervise-{uuid.uuid4()}"}

    async def runs() -> list[tuple[str, str, str]]:
        answer = await api.get(f"{URL}/uploads", params={"day": day.isoformat()}, headers=admin)
        assert answer.status_code == 200, answer.text
        return [(run["kind"], run["workflow_id"], run["status"]) for run in answer.json()]

    assert await runs() == [("revisit", ids[0], "none"), ("prescription", ids[1], "none")]
    try:
        started = await api.post(f"{URL}/uploads", json={"day": day.isoformat(), "resend": True}, headers=keyed)
        assert started.status_code == 202, started.text
        assert started.json() == {"day": day.isoformat(), "workflow_ids": ids}
        described = await client.get_workflow_handle(ids[0]).describe()
        assert described.workflow_type == "SupervisionUpload"
        assert await runs() == [("revisit", ids[0], "running"), ("prescription", ids[1], "running")]
        # A retried request is the same one; asking again while the day is being uploaded is refused.
        assert (
            await api.post(f"{URL}/uploads", json={"day": day.isoformat(), "resend": True}, headers=keyed)
        ).json() == started.json()
        busy = await api.post(f"{URL}/uploads", json={"day": day.isoformat(), "kinds": ["prescription"]}, headers=admin)
        assert assert_problem(busy, 409, "SUPERVISION_UPLOAD_RUNNING")["running"] == [ids[1]]
    finally:
        for workflow_id in ids:
            await client.get_workflow_handle(workflow_id).terminate("test over")
    assert await runs() == [("revisit", ids[0], "terminated"), ("prescription", ids[1], "terminated")]
    # Once the runs ended, the day can be uploaded again.
    again = await api.post(f"{URL}/uploads", json={"day": day.isoformat(), "kinds": ["revisit"]}, headers=admin)
    assert again.status_code == 202 and again.json()["workflow_ids"] == ids[:1]
    await client.get_workflow_handle(ids[0]).terminate("test over")
    async with sessions() as session:
        actions = (
            await session.scalars(
                select(AuditEvent).where(
                    col(AuditEvent.actor_user_id) == admin_user, col(AuditEvent.subject_id) == day.isoformat()
                )
            )
        ).all()
    assert [(a.action, a.detail["kinds"]) for a in actions] == [
        ("supervision.upload_requested", ["revisit", "prescription"]),
        ("supervision.upload_requested", ["revisit"]),
    ]

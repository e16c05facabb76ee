"""The institution's details and their submission to the supervision platform (8.5.4), for admins holding the
institution permission. The platform's decision is the flow's (tests/workflows/test_institution.py, tests/e2e)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from temporalio.client import Client

from models.common import Role
from tests.api.helpers import login, make_user
from workflows.institution import institution_workflow_id

URL = "/api/v1/admin/institutions"


def details(**overrides: Any) -> dict[str, Any]:
    code = f"PDY{uuid.uuid4().hex[:10].upper()}"
    return {
        "code": code,
        "name": "岐黄中医互联网医院",
        "kind": "互联网医院",
        "licence_no": code,
        "access_ips": ["203.0.113.10", "198.51.100.0/28"],
        **overrides,
    }


async def test_details_are_kept_submitted_once_and_then_locked(
    api: httpx.AsyncClient, sessions, client: Client
) -> None:  # type: ignore[no-untyped-def]
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    admin = await login(api, admin_user)
    body = details()
    created = await api.post(URL, json=body, headers=admin)
    assert created.status_code == 201, created.text
    institution = created.json()
    assert (institution["status"], institution["attempt"], institution["platform_ref"]) == ("draft", 0, None)
    assert (await api.post(URL, json=body, headers=admin)).json()["code"] == "INSTITUTION_EXISTS"
    bad_ip = await api.post(URL, json=details(access_ips=["300.1.1.1"]), headers=admin)
    assert bad_ip.status_code == 422

    url = f"{URL}/{institution['id']}"
    edited = await api.put(url, json={**body, "kind": "中医医院"}, headers=admin)
    assert edited.status_code == 200 and edited.json()["kind"] == "中医医院"

    submitted = await api.post(f"{url}/registration", headers=admin)
    assert submitted.status_code == 202, submitted.text
    assert submitted.json() == {
        "institution_id": institution["id"],
        "status": "submitted",
        "attempt": 1,
        "workflow_id": institution_workflow_id(institution["id"]),
    }
    handle = client.get_workflow_handle(institution_workflow_id(institution["id"]))
    try:
        # No worker runs here: the flow waits. Asking again is the same submission.
        assert (await api.post(f"{url}/registration", headers=admin)).json()["attempt"] == 1
        locked = await api.put(url, json=body, headers=admin)
        assert (locked.status_code, locked.json()["code"]) == (409, "INSTITUTION_NOT_EDITABLE")
        listed = await api.get(URL, headers=admin)
        assert institution["id"] in {row["id"] for row in listed.json()}
        assert (await api.get(url, headers=admin)).json()["submitted_at"] is not None
    finally:
        await handle.terminate("test over")


async def test_only_institution_managers(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    for role in (Role.DOCTOR, Role.FINANCE, Role.PATIENT):
        user, _ = await make_user(sessions, role)
        answer = await api.post(URL, json=details(), headers=await login(api, user))
        assert (answer.status_code, answer.json()["code"]) == (403, "FORBIDDEN"), role

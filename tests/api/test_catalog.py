"""The drug catalogue over the API (8.6.2): who reads it and who proposes and approves changes; what may not be
proposed (narcotic, psychotropic or banned materials; a second pending change; a taken code); the record of changes.
Approval itself runs through the flow: tests/workflows/test_catalog.py, tests/e2e/test_catalog.py."""

from __future__ import annotations

import uuid

import httpx
from temporalio.client import Client

from models.common import Role
from models.permissions import Permission
from models.tables import Herb, UserPermission
from tests.api.helpers import login, make_user
from tests.api.test_booking import assert_problem
from workflows.catalog import catalog_workflow_id

URL = "/api/v1/catalog"


def _name() -> str:
    return f"测试饮片{uuid.uuid4().hex[:8]}"


async def _listed(sessions, code: str | None = None) -> str:  # type: ignore[no-untyped-def]
    """A 饮片 in the catalogue, enabled."""
    name = _name()
    async with sessions() as session, session.begin():
        session.add(Herb(name=name, price_fen_per_100g=100, stock_g=1000, code=code))
    return name


async def _pharmacist(api: httpx.AsyncClient, sessions, *, approver: bool = False) -> tuple[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    user, _ = await make_user(sessions, Role.PHARMACIST)
    if approver:
        async with sessions() as session, session.begin():
            session.add(UserPermission(user_id=user, permission=Permission.CATALOG_APPROVE.value, granted=True))
    return user, await login(api, user)


async def test_proposals_wait_for_review_one_per_entry(api: httpx.AsyncClient, sessions, client: Client) -> None:  # type: ignore[no-untyped-def]
    _, pharmacist = await _pharmacist(api, sessions)
    name = _name()
    body = {
        "kind": "add",
        "herb_name": name,
        "fields": {"code": f"T{uuid.uuid4().hex[:8]}", "price_fen_per_100g": 450},
        "reason": "临床申请",
    }
    key = {"Idempotency-Key": f"cc-{uuid.uuid4()}"}
    created = await api.post(f"{URL}/changes", json=body, headers=pharmacist | key)
    assert created.status_code == 201, created.text
    change = created.json()
    assert (change["kind"], change["herb_name"], change["status"], change["before"]) == ("add", name, "pending", None)
    assert (await api.post(f"{URL}/changes", json=body, headers=pharmacist | key)).json() == change
    assert_problem(await api.post(f"{URL}/changes", json=body, headers=pharmacist), 409, "CHANGE_PENDING")
    flow = client.get_workflow_handle(catalog_workflow_id(change["id"]))
    assert (await flow.describe()).workflow_type == "CatalogChange"  # no worker here: it waits
    await flow.terminate("test over")

    queue = await api.get(f"{URL}/changes", params={"status": "pending", "herb_name": name}, headers=pharmacist)
    assert [item["id"] for item in queue.json()["items"]] == [change["id"]]
    # Not in the catalogue until published.
    listed = await api.get(f"{URL}/herbs", params={"q": name, "include_disabled": True}, headers=pharmacist)
    assert listed.json()["total"] == 0


async def test_what_may_not_be_proposed(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    _, pharmacist = await _pharmacist(api, sessions)

    async def propose(**body: object) -> httpx.Response:
        return await api.post(f"{URL}/changes", json={"reason": "测试", **body}, headers=pharmacist)

    listed = await _listed(sessions)
    # Narcotic (罂粟壳, also under its alias 米壳) and banned (犀角) materials are never listed.
    for banned in ("罂粟壳", "米壳", "犀角"):
        for kind, fields in (("add", {"fields": {"price_fen_per_100g": 100}}), ("enable", {})):
            refused = await propose(kind=kind, herb_name=banned, **fields)
            assert assert_problem(refused, 422, "NOT_LISTABLE")["herb"] == banned
    assert_problem(await propose(kind="add", herb_name=listed, fields={"price_fen_per_100g": 100}), 409, "HERB_EXISTS")
    assert_problem(await propose(kind="enable", herb_name=listed), 409, "NO_CHANGE")
    code = f"T{uuid.uuid4().hex[:8]}"
    await _listed(sessions, code=code)
    assert_problem(await propose(kind="update", herb_name=listed, fields={"code": code}), 409, "CODE_TAKEN")
    assert_problem(await propose(kind="disable", herb_name=_name()), 404, "NOT_FOUND")
    for bad in (
        {"kind": "add", "herb_name": _name()},  # no price
        {"kind": "update", "herb_name": listed},  # nothing changed
        {"kind": "disable", "herb_name": listed, "fields": {"spec": "x"}},
        {"kind": "add", "herb_name": _name(), "fields": {"price_fen_per_100g": -1}},
        {"kind": "add", "herb_name": _name(), "fields": {"price_fen_per_100g": 1, "control_class": "narcotic"}},
        {"kind": "retire", "herb_name": listed},
    ):
        answer = await propose(**bad)
        assert answer.status_code == 422, bad
        assert answer.headers["content-type"] == "application/problem+json"


async def test_who_may_do_what(api: httpx.AsyncClient, sessions) -> None:  # type: ignore[no-untyped-def]
    listed = await _listed(sessions)
    doctor_user, _ = await make_user(sessions, Role.DOCTOR)
    doctor = await login(api, doctor_user)
    assert [
        h["name"] for h in (await api.get(f"{URL}/herbs", params={"q": listed}, headers=doctor)).json()["items"]
    ] == [listed]
    body = {"kind": "disable", "herb_name": listed, "reason": "x"}
    assert_problem(await api.post(f"{URL}/changes", json=body, headers=doctor), 403, "FORBIDDEN")
    _, pharmacist = await _pharmacist(api, sessions)
    decision = {"approve": True}
    # Holding only catalog.maintain: may propose, may not approve.
    assert_problem(await api.post(f"{URL}/changes/cc-x/decision", json=decision, headers=pharmacist), 403, "FORBIDDEN")
    _, approver = await _pharmacist(api, sessions, approver=True)
    assert_problem(
        await api.post(f"{URL}/changes/cc-nobody/decision", json=decision, headers=approver), 404, "NOT_FOUND"
    )
    assert (
        await api.post(f"{URL}/changes/cc-x/decision", json={"approve": False}, headers=approver)
    ).status_code == 422
    patient_user, _ = await make_user(sessions, Role.PATIENT)
    assert_problem(await api.get(f"{URL}/herbs", headers=await login(api, patient_user)), 403, "FORBIDDEN")
    assert (await api.get(f"{URL}/herbs")).status_code == 401

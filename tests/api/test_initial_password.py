"""Accounts created with an initial password (admins' batch creation of staff, 8.5.2.1 / 8.5.3.1) must change it at
first sign-in (9.3.1.2.5): until then their token reaches only the password change, which then lifts that very token
to the scope the account has."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select, update
from sqlmodel import col

from models import idcard
from models.common import Role
from models.tables import AccessToken, User
from tests.api.helpers import PASSWORD, make_department, make_user, unique
from tests.api.test_staff_applications import doctor_body

TOKEN = "/api/v1/auth/token"
CHANGE = "/api/v1/auth/password"
MINE = "/api/v1/staff-applications/me"
OWN_PASSWORD = "Own-choice#2026-qh"


def problem(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert body["code"] == code, body
    return body


async def sign_in(api: httpx.AsyncClient, username: str, password: str) -> tuple[str, dict[str, str]]:
    """(the token's scope, the Authorization header)."""
    answer = await api.post(TOKEN, data={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return answer.json()["scope"], {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def imported_doctor(api: httpx.AsyncClient, sessions) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """An admin's batch creation of one doctor: (username, the initial password shown to the admin)."""
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    _, admin = await sign_in(api, admin_user, PASSWORD)
    username = unique("dr")
    row = (
        f"医生,{username},张仲景,{idcard.random_valid()},13800000001,220100101000001,2010-01-01,"
        f"{await make_department(sessions)},主任医师,"
    )
    header = "角色,用户名,姓名,身份证号,手机号,执业证书编码,执业证书日期,科室编号,职称,药师来源"
    content = f"{header}\n{row}\n".encode()
    created = await api.post(
        "/api/v1/admin/staff-applications/import", files={"file": ("staff.csv", content, "text/csv")}, headers=admin
    )
    assert created.status_code == 201, created.text
    [account] = created.json()["accounts"]
    return username, account["initial_password"]


async def must_change(sessions, username: str) -> bool:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        flag = await session.scalar(select(col(User.must_change_password)).where(col(User.username) == username))
    assert flag is not None
    return bool(flag)


async def test_a_batch_created_account_reaches_only_the_password_change_until_it_is_changed(
    api: httpx.AsyncClient,
    sessions,  # type: ignore[no-untyped-def]
) -> None:
    username, initial = await imported_doctor(api, sessions)
    assert await must_change(sessions, username)

    scope, headers = await sign_in(api, username, initial)
    assert scope == "password_change"
    # Nothing else: not the application, not the profile, not second-factor enrolment, not staff work.
    for method, path in (
        ("GET", MINE),
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/auth/mfa"),
        ("POST", "/api/v1/auth/mfa/totp"),
        ("GET", "/api/v1/prescriptions"),
    ):
        problem(await api.request(method, path, headers=headers), 403, "PASSWORD_CHANGE_REQUIRED")

    # The change itself holds the usual rules: the current password, and a new one that passes the complexity rule.
    problem(
        await api.post(CHANGE, json={"old_password": "Wrong#2026x", "new_password": OWN_PASSWORD}, headers=headers),
        403,
        "WRONG_PASSWORD",
    )
    problem(
        await api.post(CHANGE, json={"old_password": initial, "new_password": "short"}, headers=headers),
        422,
        "WEAK_PASSWORD",
    )
    problem(
        await api.post(CHANGE, json={"old_password": initial, "new_password": initial}, headers=headers),
        422,
        "WEAK_PASSWORD",
    )
    assert await must_change(sessions, username)
    problem(await api.get(MINE, headers=headers), 403, "PASSWORD_CHANGE_REQUIRED")

    changed = await api.post(CHANGE, json={"old_password": initial, "new_password": OWN_PASSWORD}, headers=headers)
    assert changed.status_code == 204, changed.text
    assert not await must_change(sessions, username)
    # The same session now has the account's scope: an applicant's, whose registration awaits approval.
    mine = await api.get(MINE, headers=headers)
    assert mine.status_code == 200, mine.text
    assert mine.json()["status"] == "draft"
    problem(await api.get("/api/v1/me", headers=headers), 403, "STAFF_NOT_APPROVED")

    # The initial password is gone; the own one signs in straight to the application.
    problem(await api.post(TOKEN, data={"username": username, "password": initial}), 401, "INVALID_CREDENTIALS")
    scope, _ = await sign_in(api, username, OWN_PASSWORD)
    assert scope == "applicant"


async def test_the_change_lifts_a_full_account_to_full_scope_and_logout_still_works(
    api: httpx.AsyncClient,
    sessions,  # type: ignore[no-untyped-def]
) -> None:
    user_id, _ = await make_user(sessions, Role.PATIENT)
    async with sessions() as session, session.begin():
        await session.execute(update(User).where(col(User.id) == user_id).values(must_change_password=True))

    scope, first = await sign_in(api, user_id, PASSWORD)
    assert scope == "password_change"
    # Signing out needs no password change.
    assert (await api.post("/api/v1/auth/logout", headers=first)).status_code == 204
    problem(await api.get("/api/v1/me", headers=first), 401, "UNAUTHORIZED")

    scope, headers = await sign_in(api, user_id, PASSWORD)
    assert scope == "password_change"
    problem(await api.get("/api/v1/me", headers=headers), 403, "PASSWORD_CHANGE_REQUIRED")
    changed = await api.post(CHANGE, json={"old_password": PASSWORD, "new_password": OWN_PASSWORD}, headers=headers)
    assert changed.status_code == 204, changed.text
    assert (await api.get("/api/v1/me", headers=headers)).status_code == 200
    async with sessions() as session:
        scopes = set(
            (
                await session.execute(
                    select(col(AccessToken.scope)).where(
                        col(AccessToken.user_id) == user_id, col(AccessToken.revoked_at).is_(None)
                    )
                )
            ).scalars()
        )
    assert scopes == {"full"}
    scope, _ = await sign_in(api, user_id, OWN_PASSWORD)
    assert scope == "full"


async def test_self_registered_staff_choose_their_own_password_and_need_no_change(
    api: httpx.AsyncClient,
    sessions,  # type: ignore[no-untyped-def]
) -> None:
    body = await doctor_body(sessions)
    assert (await api.post("/api/v1/staff-applications", json=body)).status_code == 201
    assert not await must_change(sessions, body["username"])
    scope, _ = await sign_in(api, body["username"], body["password"])
    assert scope == "applicant"

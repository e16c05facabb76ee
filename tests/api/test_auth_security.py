"""Sign-in security (9.3.1.2.2, 9.3.1.2.4, 9.3.1.2.5): lockout, idle timeout, re-authentication, password change."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlmodel import col

from api.services.lockout import throttle_key
from models.common import Role
from models.tables import LoginThrottle
from tests.api.helpers import PASSWORD, login, make_user, unique
from tests.api.security_helpers import age_token, api_with, events_about, token_row

TOKEN = "/api/v1/auth/token"
NEW_PASSWORD = "Tcm-Clinic-2026"


async def _attempt(api, username: str, password: str = "Wrong#Password1"):
    return await api.post(TOKEN, data={"username": username, "password": password})


# --- lockout -------------------------------------------------------------------------------------------------------


async def test_failures_counted_across_two_api_processes_lock_the_account(database_url, client, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.DOCTOR)
    async with api_with(database_url, client) as first, api_with(database_url, client) as second:
        # Four failures, alternating between the two processes, do not lock yet.
        for n in range(4):
            response = await _attempt(first if n % 2 else second, user_id)
            assert (response.status_code, response.json()["code"]) == (401, "INVALID_CREDENTIALS")
        fifth = await _attempt(first, user_id)
        assert (fifth.status_code, fifth.json()["code"]) == (423, "ACCOUNT_LOCKED")
        until = datetime.fromisoformat(fifth.json()["locked_until"])
        assert timedelta(minutes=29) < until - datetime.now(UTC) <= timedelta(minutes=30)
        assert int(fifth.headers["retry-after"]) > 29 * 60
        assert "锁定" in fifth.json()["detail"]
        # Locked in the other process too, even with the right password.
        right = await _attempt(second, user_id, PASSWORD)
        assert (right.status_code, right.json()["code"]) == (423, "ACCOUNT_LOCKED")

    events = await events_about(sessions, user_id, "auth.")
    assert [event.action for event in events] == ["auth.login_failed"] * 5 + ["auth.locked", "auth.login_refused"]
    assert all(event.actor_user_id is None and event.client_ip for event in events)
    assert events[5].detail["failures"] == 5


async def test_unknown_usernames_lock_alike(api, sessions) -> None:
    known, _ = await make_user(sessions, Role.PATIENT)
    unknown = unique("nobody")
    answers = {}
    for username in (known, unknown):
        for _ in range(4):
            await _attempt(api, username)
        answers[username] = await _attempt(api, username)
    strip = ("instance", "locked_until", "detail")
    bodies = [{k: v for k, v in answers[name].json().items() if k not in strip} for name in (known, unknown)]
    assert bodies[0] == bodies[1]
    assert answers[unknown].status_code == answers[known].status_code == 423


async def test_failures_outside_the_window_do_not_count(database_url, client, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.PATIENT)
    async with api_with(database_url, client, login_max_failures=2, login_failure_window_s=60) as api:
        assert (await _attempt(api, user_id)).status_code == 401
        # The first failure ages out of the window.
        async with sessions() as session, session.begin():
            await session.execute(
                update(LoginThrottle)
                .where(col(LoginThrottle.key) == throttle_key(user_id))
                .values(failures=[datetime.now(UTC) - timedelta(minutes=5)])
            )
        assert (await _attempt(api, user_id)).status_code == 401
        assert (await _attempt(api, user_id)).status_code == 423


async def test_a_successful_sign_in_clears_earlier_failures(api, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.PATIENT)
    for _ in range(4):
        await _attempt(api, user_id)
    await login(api, user_id)
    for _ in range(4):
        assert (await _attempt(api, user_id)).status_code == 401


async def test_admin_unlocks_with_a_reason(api, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.PHARMACIST)
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    admin, pharmacist = await login(api, admin_user), await login(api, user_id)
    for _ in range(5):
        await _attempt(api, user_id)
    assert (await _attempt(api, user_id, PASSWORD)).status_code == 423

    url = f"/api/v1/admin/users/{user_id}/unlock"
    assert (await api.post(url, json={}, headers=admin)).status_code == 422  # a reason is required
    # A lock stops new sign-ins only; and only holders of account.manage unlock.
    assert (await api.post(url, json={"reason": "本人来电核实"}, headers=pharmacist)).status_code == 403
    unlocked = await api.post(url, json={"reason": "本人来电核实"}, headers=admin)
    assert unlocked.json() == {"user_id": user_id, "was_locked": True}
    await login(api, user_id)

    event = (await events_about(sessions, user_id, "auth.unlocked"))[0]
    assert (event.actor_user_id, event.reason, event.detail) == (admin_user, "本人来电核实", {"was_locked": True})


async def test_lock_expires_by_itself(api, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.PATIENT)
    for _ in range(5):
        await _attempt(api, user_id)
    async with sessions() as session, session.begin():
        await session.execute(
            update(LoginThrottle)
            .where(col(LoginThrottle.key) == throttle_key(user_id))
            .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    await login(api, user_id)


# --- sessions ------------------------------------------------------------------------------------------------------


async def test_idle_staff_token_expires_but_a_patient_token_lasts_longer(api, sessions, settings) -> None:
    doctor_user, _ = await make_user(sessions, Role.DOCTOR)
    patient_user, _ = await make_user(sessions, Role.PATIENT)
    doctor, patient = await login(api, doctor_user), await login(api, patient_user)
    idle = timedelta(seconds=settings.session_idle_staff_s + 60)
    await age_token(sessions, doctor, last_used_at=idle)
    await age_token(sessions, patient, last_used_at=idle)
    refused = await api.get("/api/v1/me", headers=doctor)
    assert (refused.status_code, refused.json()["code"]) == (401, "UNAUTHORIZED")
    assert (await api.get("/api/v1/me", headers=patient)).status_code == 200

    await age_token(sessions, patient, last_used_at=timedelta(seconds=settings.session_idle_patient_s + 60))
    assert (await api.get("/api/v1/me", headers=patient)).status_code == 401


async def test_last_used_is_refreshed_at_most_once_a_minute(api, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.DOCTOR)
    headers = await login(api, user_id)
    issued = (await token_row(sessions, headers)).last_used_at
    await asyncio.gather(*(api.get("/api/v1/me", headers=headers) for _ in range(5)))
    assert (await token_row(sessions, headers)).last_used_at == issued

    await age_token(sessions, headers, last_used_at=timedelta(minutes=20))
    responses = await asyncio.gather(*(api.get("/api/v1/me", headers=headers) for _ in range(5)))
    assert all(response.status_code == 200 for response in responses)
    refreshed = (await token_row(sessions, headers)).last_used_at
    assert datetime.now(UTC) - refreshed < timedelta(seconds=10)


async def test_sensitive_actions_need_a_recent_sign_in(api, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.DOCTOR)
    headers = await login(api, user_id)
    await age_token(sessions, headers, auth_time=timedelta(minutes=6))
    change = {"old_password": PASSWORD, "new_password": NEW_PASSWORD}
    refused = await api.post("/api/v1/auth/password", json=change, headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (401, "REAUTH_REQUIRED")
    assert refused.json()["max_age"] == 300
    refused = await api.post("/api/v1/auth/mfa/totp", headers=headers)
    assert refused.json()["code"] == "REAUTH_REQUIRED"
    # Ordinary requests go on.
    assert (await api.get("/api/v1/me", headers=headers)).status_code == 200
    # Signing in again satisfies it.
    fresh = await login(api, user_id)
    assert (await api.post("/api/v1/auth/password", json=change, headers=fresh)).status_code == 204


# --- password change -----------------------------------------------------------------------------------------------


async def test_weak_new_passwords_are_refused_with_every_rule_broken(api, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.PATIENT)  # the username is the user id
    headers = await login(api, user_id)
    cases = {
        "short1a": {"password.length", "password.classes"},
        "alllowercaseletters": {"password.classes"},
        f"{user_id}#A1": {"password.username"},
        "P@ssw0rd123": {"password.common"},
        PASSWORD: {"password.reuse"},
    }
    for new, rules in cases.items():
        response = await api.post(
            "/api/v1/auth/password", json={"old_password": PASSWORD, "new_password": new}, headers=headers
        )
        assert (response.status_code, response.json()["code"]) == (422, "WEAK_PASSWORD"), new
        assert {error["type"] for error in response.json()["errors"]} == rules
        assert all(error["message"] for error in response.json()["errors"])
    await login(api, user_id)  # unchanged


async def test_password_change_needs_the_old_one_and_ends_other_sessions(api, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.PHARMACIST)
    current, other = await login(api, user_id), await login(api, user_id)

    wrong = await api.post(
        "/api/v1/auth/password", json={"old_password": "Not-It#2026", "new_password": NEW_PASSWORD}, headers=current
    )
    assert (wrong.status_code, wrong.json()["code"]) == (403, "WRONG_PASSWORD")

    changed = await api.post(
        "/api/v1/auth/password", json={"old_password": PASSWORD, "new_password": NEW_PASSWORD}, headers=current
    )
    assert changed.status_code == 204
    assert (await api.get("/api/v1/me", headers=current)).status_code == 200
    assert (await api.get("/api/v1/me", headers=other)).status_code == 401
    assert (await _attempt(api, user_id, PASSWORD)).status_code == 401
    await login(api, user_id, NEW_PASSWORD)

    actions = [event.action for event in await events_about(sessions, user_id, "auth.")]
    assert "auth.password_changed" in actions
    # The wrong old password counted as a failed sign-in.
    assert actions.count("auth.login_failed") == 2
    changed_event = next(e for e in await events_about(sessions, user_id, "auth.password_changed"))
    assert changed_event.actor_user_id == user_id
    assert changed_event.detail == {"sessions_revoked": 1}

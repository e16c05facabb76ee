"""Fine-grained permissions (8.6.1 e) assigned by admins, and the audit log they query and export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from models.common import Role
from models.permissions import PERMISSION_NAMES, ROLE_DEFAULTS, Permission
from tests.api.helpers import login, make_user, unique
from tests.api.security_helpers import age_token, events_about

AUDIT = "/api/v1/admin/audit-events"


def _user_permission(user_id: str, permission: str) -> str:
    return f"/api/v1/admin/users/{user_id}/permissions/{permission}"


async def test_catalogue_matches_the_code_and_role_defaults(api, sessions) -> None:
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    response = await api.get("/api/v1/admin/permissions", headers=await login(api, admin_user))
    assert response.status_code == 200
    catalogue = {entry["code"]: entry for entry in response.json()}
    assert set(catalogue) == {str(permission) for permission in Permission}
    for permission in Permission:
        assert catalogue[permission]["name"] == PERMISSION_NAMES[permission]
        holders = {role for role, held in ROLE_DEFAULTS.items() if permission in held}
        assert set(catalogue[permission]["roles"]) == {str(role) for role in holders}


async def test_audit_read_is_a_permission_admins_grant_and_revoke_per_person(api, sessions) -> None:
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    other_admin_user, _ = await make_user(sessions, Role.ADMIN)
    doctor_user, _ = await make_user(sessions, Role.DOCTOR)
    admin, other_admin, doctor = [await login(api, user) for user in (admin_user, other_admin_user, doctor_user)]

    refused = await api.get(AUDIT, headers=doctor)
    assert (refused.status_code, refused.json()["code"], refused.json()["permission"]) == (
        403,
        "FORBIDDEN",
        "audit.read",
    )
    grant = {"effect": "grant", "reason": "质控科抽查病历访问记录"}
    granted = await api.put(_user_permission(doctor_user, "audit.read"), json=grant, headers=admin)
    assert granted.status_code == 200, granted.text
    held = {entry["code"]: entry for entry in granted.json()["permissions"]}
    assert held["audit.read"] == {"code": "audit.read", "name": "查询与导出审计日志", "held": True, "source": "grant"}
    assert held["rx.prescribe"]["source"] == "role"
    assert (await api.get(AUDIT, headers=doctor)).status_code == 200

    # A personal revocation outranks the role: this admin loses what every admin holds by default.
    revoke = {"effect": "revoke", "reason": "调岗"}
    await api.put(_user_permission(other_admin_user, "audit.read"), json=revoke, headers=admin)
    assert (await api.get(AUDIT, headers=other_admin)).status_code == 403
    await api.put(
        _user_permission(other_admin_user, "audit.read"), json={"effect": "inherit", "reason": "复岗"}, headers=admin
    )
    assert (await api.get(AUDIT, headers=other_admin)).status_code == 200

    # Only holders of permission.manage assign permissions.
    assert (await api.put(_user_permission(doctor_user, "rx.review"), json=grant, headers=doctor)).status_code == 403
    unknown = await api.put(_user_permission(doctor_user, "no.such"), json=grant, headers=admin)
    assert unknown.status_code == 422

    events = await events_about(sessions, doctor_user, "permission.")
    assert [(e.action, e.actor_user_id, e.reason, e.detail) for e in events] == [
        ("permission.user_grant", admin_user, "质控科抽查病历访问记录", {"permission": "audit.read"})
    ]
    assert [e.action for e in await events_about(sessions, other_admin_user, "permission.")] == [
        "permission.user_revoke",
        "permission.user_inherit",
    ]


async def test_role_permissions_apply_to_everyone_in_the_role(api, sessions) -> None:
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    finance_user, _ = await make_user(sessions, Role.FINANCE)
    admin, finance = await login(api, admin_user), await login(api, finance_user)
    url = "/api/v1/admin/roles/finance/permissions/audit.read"
    assert (await api.get(AUDIT, headers=finance)).status_code == 403
    try:
        granted = await api.put(url, json={"granted": True, "reason": "财务审计"}, headers=admin)
        assert "audit.read" in granted.json()["permissions"]
        assert (await api.get(AUDIT, headers=finance)).status_code == 200
    finally:
        revoked = await api.put(url, json={"granted": False, "reason": "审计结束"}, headers=admin)
    assert "audit.read" not in revoked.json()["permissions"]
    assert (await api.get(AUDIT, headers=finance)).status_code == 403
    actions = [e.action for e in await events_about(sessions, "finance", "permission.role_")]
    assert actions[-2:] == ["permission.role_granted", "permission.role_revoked"]


async def test_permission_changes_need_a_recent_sign_in(api, sessions) -> None:
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    doctor_user, _ = await make_user(sessions, Role.DOCTOR)
    admin = await login(api, admin_user)
    await age_token(sessions, admin, auth_time=timedelta(minutes=10))
    body = {"effect": "grant", "reason": "临时授权"}
    refused = await api.put(_user_permission(doctor_user, "audit.read"), json=body, headers=admin)
    assert (refused.status_code, refused.json()["code"]) == (401, "REAUTH_REQUIRED")
    # Reading needs no fresh sign-in.
    assert (await api.get(f"/api/v1/admin/users/{doctor_user}/permissions", headers=admin)).status_code == 200


async def test_doctor_editing_is_guarded_by_its_permission(api, sessions) -> None:
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    doctor_user, doctor_id = await make_user(sessions, Role.DOCTOR)
    admin, doctor = await login(api, admin_user), await login(api, doctor_user)
    url = f"/api/v1/admin/doctors/{doctor_id}"
    assert (await api.patch(url, json={"specialties": "脾胃病"}, headers=doctor)).status_code == 403
    await api.put(
        _user_permission(doctor_user, "doctor.manage"), json={"effect": "grant", "reason": "科主任"}, headers=admin
    )
    assert (await api.patch(url, json={"specialties": "脾胃病"}, headers=doctor)).status_code == 200


async def _failed_logins(api, username: str, count: int) -> None:
    for _ in range(count):
        await api.post("/api/v1/auth/token", data={"username": username, "password": "Wrong#Password1"})


async def test_audit_events_are_filtered_and_paged(api, sessions) -> None:
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    admin = await login(api, admin_user)
    target, _ = await make_user(sessions, Role.PATIENT)
    started = datetime.now(UTC) - timedelta(seconds=1)
    await _failed_logins(api, target, 3)

    query = {"subject_type": "user", "subject_id": target}
    page = (await api.get(AUDIT, params={**query, "limit": 2}, headers=admin)).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    assert page["items"][0]["id"] > page["items"][1]["id"]  # newest first
    rest = (await api.get(AUDIT, params={**query, "limit": 2, "offset": 2}, headers=admin)).json()
    assert len(rest["items"]) == 1
    item = rest["items"][0]
    assert item["action"] == "auth.login_failed" and item["detail"] == {"factor": "password"}
    assert item["client_ip"] and item["request_id"]

    by_prefix = await api.get(AUDIT, params={**query, "action": "auth.*"}, headers=admin)
    assert by_prefix.json()["total"] == 3
    exact = await api.get(AUDIT, params={**query, "action": "auth.login"}, headers=admin)
    assert exact.json()["total"] == 0
    window = {"since": started.isoformat(), "until": (started + timedelta(hours=1)).isoformat()}
    assert (await api.get(AUDIT, params={**query, **window}, headers=admin)).json()["total"] == 3
    earlier = {"until": started.isoformat()}
    assert (await api.get(AUDIT, params={**query, **earlier}, headers=admin)).json()["total"] == 0
    by_actor = await api.get(AUDIT, params={"actor": unique("nobody")}, headers=admin)
    assert by_actor.json()["total"] == 0
    naive = await api.get(AUDIT, params={"since": "2026-01-01T00:00:00"}, headers=admin)
    assert naive.status_code == 422


async def test_export_streams_csv_and_is_itself_audited(api, sessions) -> None:
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    admin = await login(api, admin_user)
    target, _ = await make_user(sessions, Role.PATIENT)
    await _failed_logins(api, target, 2)
    # A reason typed like a spreadsheet formula must not run as one.
    unlock = await api.post(f"/api/v1/admin/users/{target}/unlock", json={"reason": '=HYPERLINK("x")'}, headers=admin)
    assert unlock.status_code == 200

    response = await api.get(f"{AUDIT}/export", params={"subject_id": target}, headers=admin)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert [row["action"] for row in rows] == ["auth.login_failed", "auth.login_failed", "auth.unlocked"]
    assert rows[2]["actor_user_id"] == admin_user
    assert rows[2]["reason"] == '\'=HYPERLINK("x")'
    assert rows[0]["at"].endswith("+08:00")

    exports = await events_about(sessions, "audit_events", "audit.exported")
    [export] = [event for event in exports if event.actor_user_id == admin_user]
    assert export.detail == {"subject_id": target}

    doctor_user, _ = await make_user(sessions, Role.DOCTOR)
    refused = await api.get(f"{AUDIT}/export", headers=await login(api, doctor_user))
    assert refused.status_code == 403

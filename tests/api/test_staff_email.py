"""Staff e-mail addresses (where e-mailed notices such as the daily reconciliation result go): set by the person or
by an admin, validated, stored encrypted, shown masked, audited without the address."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlmodel import col

from api.errors import Problem
from api.services.contact import normalize_email
from core.crypto.sm import FieldCipher
from core.settings import Settings
from models.common import Role
from models.tables import User
from tests.api.helpers import login, make_user, unique
from tests.api.security_helpers import age_token, events_about

ME = "/api/v1/me/email"


def _admin_url(user_id: str) -> str:
    return f"/api/v1/admin/users/{user_id}/email"


async def _stored(sessions, user_id: str) -> str | None:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return await session.scalar(select(col(User.email_enc)).where(col(User.id) == user_id))


async def test_staff_set_and_clear_their_own_address(api, sessions) -> None:  # type: ignore[no-untyped-def]
    user_id, _ = await make_user(sessions, Role.FINANCE)
    headers = await login(api, user_id)
    address = f"{unique('caiwu')}@Hospital.CN"
    answer = await api.put(ME, json={"email": f"  {address} "}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"user_id": user_id, "email_masked": "c***@hospital.cn"}
    assert (await api.get("/api/v1/me", headers=headers)).json()["email_masked"] == "c***@hospital.cn"
    # Encrypted at rest, the domain in lower case.
    stored = await _stored(sessions, user_id)
    settings = Settings()
    assert stored is not None and address.split("@")[0] not in stored
    assert (
        FieldCipher(settings.pii_key, settings.blind_index_key).decrypt("email", stored)
        == address.split("@")[0] + "@hospital.cn"
    )

    cleared = await api.put(ME, json={"email": None}, headers=headers)
    assert (cleared.status_code, cleared.json()["email_masked"]) == (200, None)
    assert await _stored(sessions, user_id) is None
    events = await events_about(sessions, user_id, "account.email_changed")
    assert [e.detail for e in events] == [{"email_set": True}, {"email_set": False}]


@pytest.mark.parametrize(
    "bad", ["caiwu", "caiwu@hospital", "cai wu@hospital.cn", "caiwu@hospital.cn\r\nBcc: x@evil.example", "财务@医院.cn"]
)
def test_only_plain_addresses_are_taken(bad: str) -> None:
    with pytest.raises(Problem) as refused:
        normalize_email(bad)
    assert (refused.value.status, refused.value.code) == (422, "INVALID_EMAIL")


async def test_a_bad_address_patients_and_an_old_sign_in_are_refused(api, sessions) -> None:  # type: ignore[no-untyped-def]
    finance_user, _ = await make_user(sessions, Role.FINANCE)
    patient_user, _ = await make_user(sessions, Role.PATIENT)
    finance, patient = await login(api, finance_user), await login(api, patient_user)
    bad = await api.put(ME, json={"email": "caiwu@hospital"}, headers=finance)
    assert (bad.status_code, bad.json()["code"]) == (422, "INVALID_EMAIL")
    assert (await api.put(ME, json={"email": "p@example.cn"}, headers=patient)).status_code == 403
    await age_token(sessions, finance, auth_time=timedelta(minutes=10))
    stale = await api.put(ME, json={"email": "caiwu@hospital.cn"}, headers=finance)
    assert (stale.status_code, stale.json()["code"]) == (401, "REAUTH_REQUIRED")


async def test_admins_set_a_staff_members_address(api, sessions) -> None:  # type: ignore[no-untyped-def]
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    finance_user, _ = await make_user(sessions, Role.FINANCE)
    patient_user, _ = await make_user(sessions, Role.PATIENT)
    doctor_user, _ = await make_user(sessions, Role.DOCTOR)
    admin, doctor = await login(api, admin_user), await login(api, doctor_user)
    body = {"email": "duizhang@hospital.cn"}
    done = await api.put(_admin_url(finance_user), json=body, headers=admin)
    assert (done.status_code, done.json()["email_masked"]) == (200, "d***@hospital.cn")
    assert await _stored(sessions, finance_user) is not None
    (event,) = await events_about(sessions, finance_user, "account.email_changed")
    assert (event.actor_user_id, event.detail) == (admin_user, {"email_set": True})

    patient = await api.put(_admin_url(patient_user), json=body, headers=admin)
    assert (patient.status_code, patient.json()["code"]) == (409, "NOT_STAFF")
    assert (await api.put(_admin_url("u-nobody"), json=body, headers=admin)).status_code == 404
    assert (await api.put(_admin_url(finance_user), json=body, headers=doctor)).status_code == 403

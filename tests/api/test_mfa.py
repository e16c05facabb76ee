"""Second factors (9.3.1.2.3): TOTP enrolment and sign-in, SMS codes through the sandbox notifier, and mandatory
MFA for staff."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import select
from sqlmodel import col

from core.totp import STEP_S, secret_key, totp
from models.common import Role
from models.tables import MfaFactor
from tests.api.helpers import PASSWORD, login, make_user
from tests.api.security_helpers import api_with, events_about, texted_codes, token_row

TOKEN = "/api/v1/auth/token"
PHONE = "13800138000"


async def _enrol_totp(api: httpx.AsyncClient, headers: dict[str, str]) -> bytes:
    """Enrol an authenticator app; returns its key. The confirming code is the current step's."""
    started = await api.post("/api/v1/auth/mfa/totp", headers=headers)
    assert started.status_code == 200, started.text
    key = secret_key(started.json()["secret"])
    confirmed = await api.post("/api/v1/auth/mfa/totp/confirm", json={"code": totp(key, time.time())}, headers=headers)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["methods"] == ["totp"]
    return key


def _next_code(key: bytes) -> str:
    # The current step's code was used to confirm and works only once; the next step's is within the allowed drift.
    return totp(key, time.time() + STEP_S)


async def _challenge(api: httpx.AsyncClient, username: str) -> dict:
    response = await api.post(TOKEN, data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mfa_required"] is True and "access_token" not in body
    return body


async def test_totp_enrolment_and_two_step_sign_in(api, sessions, settings) -> None:
    user_id, _ = await make_user(sessions, Role.DOCTOR)
    headers = await login(api, user_id)
    started = await api.post("/api/v1/auth/mfa/totp", headers=headers)
    secret, uri = started.json()["secret"], started.json()["otpauth_uri"]
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri

    # Pending until confirmed; a wrong code does not confirm.
    status = (await api.get("/api/v1/auth/mfa", headers=headers)).json()
    assert status == {"methods": [], "required": False, "totp_pending": True}
    wrong = await api.post("/api/v1/auth/mfa/totp/confirm", json={"code": "000000"}, headers=headers)
    assert (wrong.status_code, wrong.json()["code"]) == (422, "MFA_CODE_INVALID")
    key = secret_key(secret)
    used = totp(key, time.time())
    ok = await api.post("/api/v1/auth/mfa/totp/confirm", json={"code": used}, headers=headers)
    assert ok.json() == {"methods": ["totp"], "required": False, "totp_pending": False}

    # The secret is stored SM4-encrypted, never as is.
    async with sessions() as session:
        factor = (await session.execute(select(MfaFactor).where(col(MfaFactor.user_id) == user_id))).scalar_one()
    assert factor.totp_secret_enc is not None and secret not in factor.totp_secret_enc
    assert factor.totp_secret_enc.startswith("sm4g1:")

    challenge = await _challenge(api, user_id)
    assert challenge["methods"] == ["totp"]
    assert challenge["expires_in"] == settings.mfa_challenge_ttl_s
    step = {"challenge_id": challenge["challenge_id"], "method": "totp"}
    wrong = await api.post("/api/v1/auth/token/mfa", json={**step, "code": "000000"})
    assert (wrong.status_code, wrong.json()["code"]) == (401, "MFA_CODE_INVALID")
    # The code that confirmed the enrolment has been used.
    replayed = await api.post("/api/v1/auth/token/mfa", json={**step, "code": used})
    assert replayed.json()["code"] == "MFA_CODE_INVALID"
    signed_in = await api.post("/api/v1/auth/token/mfa", json={**step, "code": _next_code(key)})
    assert signed_in.status_code == 200, signed_in.text
    token_headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    assert (await api.get("/api/v1/me", headers=token_headers)).status_code == 200
    assert (await token_row(sessions, token_headers)).mfa_method == "totp"

    # A challenge works once.
    again = await api.post("/api/v1/auth/token/mfa", json={**step, "code": _next_code(key)})
    assert (again.status_code, again.json()["code"]) == (401, "MFA_CHALLENGE_INVALID")

    actions = [event.action for event in await events_about(sessions, user_id)]
    assert "mfa.totp_enrolled" in actions
    assert actions.count("auth.login_failed") == 2
    assert actions[-1] == "auth.login"


async def test_a_challenge_dies_after_five_wrong_codes(api, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.PHARMACIST)
    key = await _enrol_totp(api, await login(api, user_id))
    challenge = await _challenge(api, user_id)
    step = {"challenge_id": challenge["challenge_id"], "method": "totp"}
    codes = []
    for _ in range(4):
        codes.append((await api.post("/api/v1/auth/token/mfa", json={**step, "code": "000000"})).json()["code"])
    assert codes == ["MFA_CODE_INVALID"] * 4
    # The fifth wrong code is also the fifth failure of the name: it locks.
    fifth = await api.post("/api/v1/auth/token/mfa", json={**step, "code": "000000"})
    assert (fifth.status_code, fifth.json()["code"]) == (423, "ACCOUNT_LOCKED")
    late = await api.post("/api/v1/auth/token/mfa", json={**step, "code": _next_code(key)})
    assert late.json()["code"] == "MFA_CHALLENGE_INVALID"


async def test_sms_enrolment_and_sign_in_with_a_texted_code(api, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.ADMIN)
    headers = await login(api, user_id)
    started = await api.post("/api/v1/auth/mfa/sms", json={"phone": PHONE}, headers=headers)
    assert started.status_code == 200, started.text
    assert started.json()["sent_to"] == "138****8000"
    [code] = await texted_codes(sessions, user_id)
    confirm = {"challenge_id": started.json()["challenge_id"]}
    other = f"{(int(code) + 1) % 10**6:06d}"
    wrong = await api.post("/api/v1/auth/mfa/sms/confirm", json={**confirm, "code": other}, headers=headers)
    assert (wrong.status_code, wrong.json()["code"]) == (422, "MFA_CODE_INVALID")
    confirmed = await api.post("/api/v1/auth/mfa/sms/confirm", json={**confirm, "code": code}, headers=headers)
    assert confirmed.json()["methods"] == ["sms"]

    challenge = await _challenge(api, user_id)
    assert challenge["methods"] == ["sms"]
    # Without a text there is no code to give.
    step = {"challenge_id": challenge["challenge_id"], "method": "sms"}
    assert (await api.post("/api/v1/auth/token/mfa", json={**step, "code": code})).status_code == 401
    sent = await api.post("/api/v1/auth/token/mfa/sms", json={"challenge_id": challenge["challenge_id"]})
    assert sent.json() == {"sent_to": "138****8000", "resend_after": 60}
    too_soon = await api.post("/api/v1/auth/token/mfa/sms", json={"challenge_id": challenge["challenge_id"]})
    assert (too_soon.status_code, too_soon.json()["code"]) == (429, "SMS_TOO_FREQUENT")
    assert "retry-after" in too_soon.headers
    login_code = (await texted_codes(sessions, user_id))[-1]
    signed_in = await api.post("/api/v1/auth/token/mfa", json={**step, "code": login_code})
    assert signed_in.status_code == 200, signed_in.text
    assert (
        await token_row(sessions, {"Authorization": f"Bearer {signed_in.json()['access_token']}"})
    ).mfa_method == "sms"


async def test_sms_is_refused_for_a_user_without_a_phone(api, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.DOCTOR)
    await _enrol_totp(api, await login(api, user_id))
    challenge = await _challenge(api, user_id)
    refused = await api.post("/api/v1/auth/token/mfa/sms", json={"challenge_id": challenge["challenge_id"]})
    assert (refused.status_code, refused.json()["code"]) == (409, "SMS_NOT_ENROLLED")


async def test_mandatory_mfa_restricts_staff_without_a_factor_to_enrolment(database_url, client, sessions) -> None:
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    patient_user, _ = await make_user(sessions, Role.PATIENT)
    async with api_with(database_url, client, mfa_required_for_staff=True) as api:
        response = await api.post(TOKEN, data={"username": admin_user, "password": PASSWORD})
        assert response.json()["scope"] == "mfa_enrolment"
        headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
        refused = await api.get("/api/v1/me", headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (403, "MFA_ENROLMENT_REQUIRED")
        status = await api.get("/api/v1/auth/mfa", headers=headers)
        assert status.json() == {"methods": [], "required": True, "totp_pending": False}

        key = await _enrol_totp(api, headers)
        # Proving the factor lifts the restriction of this very token.
        assert (await api.get("/api/v1/me", headers=headers)).status_code == 200
        challenge = await _challenge(api, admin_user)
        step = {"challenge_id": challenge["challenge_id"], "method": "totp", "code": _next_code(key)}
        assert (await api.post("/api/v1/auth/token/mfa", json=step)).json()["scope"] == "full"

        # Patients are not held to it.
        patient = await api.post(TOKEN, data={"username": patient_user, "password": PASSWORD})
        assert patient.json()["scope"] == "full"
        patient_headers = {"Authorization": f"Bearer {patient.json()['access_token']}"}
        assert (await api.get("/api/v1/me", headers=patient_headers)).status_code == 200


async def test_switching_mfa_on_holds_earlier_staff_tokens_to_it(api, database_url, client, sessions) -> None:
    doctor_user, _ = await make_user(sessions, Role.DOCTOR)
    headers = await login(api, doctor_user)
    async with api_with(database_url, client, mfa_required_for_staff=True) as strict:
        refused = await strict.get("/api/v1/me", headers=headers)
        assert refused.json()["code"] == "MFA_ENROLMENT_REQUIRED"
        assert (await strict.post("/api/v1/auth/logout", headers=headers)).status_code == 204

"""Login, token checks on every request, logout, roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import select, update
from sqlmodel import col

from api.auth import Actor, ActorDep, PatientDep, require_roles
from core.passwords import token_digest
from models.common import Role
from models.tables import AccessToken, User
from tests.api.helpers import PASSWORD, login, make_user


async def test_login_returns_an_opaque_token_stored_only_as_its_digest(api, sessions, settings) -> None:
    user_id, _ = await make_user(sessions, Role.PATIENT)
    response = await api.post("/api/v1/auth/token", data={"username": user_id, "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.token_ttl_seconds
    async with sessions() as session:
        stored = (await session.execute(select(AccessToken).where(col(AccessToken.user_id) == user_id))).scalar_one()
    assert stored.token_hash == token_digest(body["access_token"])
    assert stored.token_hash != body["access_token"]
    lifetime = (stored.expires_at - stored.created_at).total_seconds()
    assert abs(lifetime - settings.token_ttl_seconds) < 5


async def test_wrong_password_and_unknown_user_get_the_same_answer(api, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.PATIENT)
    wrong = await api.post("/api/v1/auth/token", data={"username": user_id, "password": "not-it"})
    unknown = await api.post("/api/v1/auth/token", data={"username": "nobody-" + user_id, "password": PASSWORD})
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "INVALID_CREDENTIALS"
    assert {k: v for k, v in wrong.json().items() if k != "instance"} == {
        k: v for k, v in unknown.json().items() if k != "instance"
    }


async def test_disabled_account_cannot_log_in_or_use_its_tokens(api, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.PATIENT)
    headers = await login(api, user_id)
    async with sessions() as session, session.begin():
        await session.execute(update(User).where(col(User.id) == user_id).values(disabled=True))
    refused = await api.post("/api/v1/auth/token", data={"username": user_id, "password": PASSWORD})
    assert refused.status_code == 403
    assert refused.json()["code"] == "ACCOUNT_DISABLED"
    assert (await api.get("/api/v1/me", headers=headers)).status_code == 401


async def test_missing_or_malformed_token_is_401_with_bearer_challenge(api) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
        response = await api.get("/api/v1/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["code"] == "UNAUTHORIZED"


async def test_expired_token_is_refused(api, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.DOCTOR)
    headers = await login(api, user_id)
    assert (await api.get("/api/v1/me", headers=headers)).status_code == 200
    digest = token_digest(headers["Authorization"].removeprefix("Bearer "))
    async with sessions() as session, session.begin():
        await session.execute(
            update(AccessToken)
            .where(col(AccessToken.token_hash) == digest)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = await api.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"


async def test_logout_revokes_only_the_current_token(api, sessions) -> None:
    user_id, _ = await make_user(sessions, Role.PATIENT)
    first = await login(api, user_id)
    second = await login(api, user_id)
    assert (await api.post("/api/v1/auth/logout", headers=first)).status_code == 204
    assert (await api.get("/api/v1/me", headers=first)).status_code == 401
    assert (await api.post("/api/v1/auth/logout", headers=first)).status_code == 401
    assert (await api.get("/api/v1/me", headers=second)).status_code == 200


async def test_actor_carries_role_and_profile_ref(api, sessions) -> None:
    for role in Role:
        user_id, ref = await make_user(sessions, role, display_name="李时")
        me = (await api.get("/api/v1/me", headers=await login(api, user_id))).json()
        assert me["user_id"] == user_id
        assert me["role"] == role
        assert me["display_name"] == "李时"
        assert (me["patient"] is not None) == (role is Role.PATIENT)
        if role is Role.PATIENT:
            assert me["patient"]["id"] == ref


def _role_probe(app: FastAPI) -> None:
    router = APIRouter()

    @router.get("/api/v1/_probe/patient")
    async def patient_only(actor: PatientDep) -> dict[str, str | None]:
        return {"ref": actor.ref}

    @router.get("/api/v1/_probe/staff")
    async def staff_only(
        actor: Annotated[Actor, Depends(require_roles(Role.DOCTOR, Role.PHARMACIST))],
    ) -> dict[str, str]:
        return {"role": actor.role}

    @router.get("/api/v1/_probe/anyone")
    async def anyone(actor: ActorDep) -> dict[str, str]:
        return {"user_id": actor.user_id}

    app.include_router(router)


async def test_require_roles_answers_403_for_other_roles(app, api, sessions) -> None:
    _role_probe(app)
    patient_user, patient_id = await make_user(sessions, Role.PATIENT)
    doctor_user, _ = await make_user(sessions, Role.DOCTOR)
    patient, doctor = await login(api, patient_user), await login(api, doctor_user)

    allowed = await api.get("/api/v1/_probe/patient", headers=patient)
    assert allowed.status_code == 200
    assert allowed.json() == {"ref": patient_id}

    refused = await api.get("/api/v1/_probe/patient", headers=doctor)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "FORBIDDEN"
    assert "患者" in refused.json()["detail"]

    assert (await api.get("/api/v1/_probe/staff", headers=doctor)).json() == {"role": "doctor"}
    assert (await api.get("/api/v1/_probe/staff", headers=patient)).status_code == 403
    assert (await api.get("/api/v1/_probe/anyone", headers=doctor)).status_code == 200
    assert (await api.get("/api/v1/_probe/patient")).status_code == 401


async def test_profile_role_without_its_profile_row_is_refused(app, api, sessions) -> None:
    _role_probe(app)
    user_id, _ = await make_user(sessions, Role.ADMIN)
    async with sessions() as session, session.begin():
        await session.execute(update(User).where(col(User.id) == user_id).values(role="patient"))
    response = await api.get("/api/v1/_probe/patient", headers=await login(api, user_id))
    assert response.status_code == 403
    assert response.json()["code"] == "PROFILE_MISSING"

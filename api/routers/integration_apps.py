"""Integrated applications (8.5.8.4), kept by admins: register one with its SM2 public key and scopes, change its
scopes or rate limit, disable it, rotate its key. Every change is audited.

Registration and rotation answer with the app's new SM4 key in an SM2 envelope only the app can open (see
api/gateway/protocol.py); it is not shown again, and a lost one is replaced by rotating the key.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlmodel import col

from api.auth import AdminDep
from api.deps import CipherDep, SessionDep
from api.errors import Problem, problem_responses
from api.gateway.protocol import SM4_KEY_BYTES
from api.gateway.store import SM4_KEY_COLUMN
from api.services.audit import audit
from core.crypto.sm import FieldCipher
from core.crypto.sm2 import Sm2PublicKey
from models.integration import IntegrationScope
from models.tables import IntegrationApp

router = APIRouter(prefix="/admin/integration-apps", tags=["integration"])

AppIdPath = Annotated[str, Path(max_length=40)]
_PEM_EXAMPLE = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAE…\n-----END PUBLIC KEY-----\n"


class AppIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["同仁堂合作药房"])
    public_key_pem: str = Field(max_length=4000, description="应用的 SM2 公钥（PEM）", examples=[_PEM_EXAMPLE])
    # May start empty: such an app passes the gateway but may call no endpoint until it is given a scope.
    scopes: list[IntegrationScope] = Field(default=[], max_length=20)
    rate_limit_per_minute: int = Field(default=600, ge=1, le=100_000)


class AppPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    scopes: list[IntegrationScope] | None = Field(default=None, max_length=20)
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    active: bool | None = Field(default=None, description="false 即停用：该应用的调用立即被拒绝")


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    public_key_pem: str = Field(max_length=4000, description="新的 SM2 公钥（PEM），立即生效", examples=[_PEM_EXAMPLE])


class AppOut(BaseModel):
    app_id: str
    name: str
    public_key_pem: str
    key_version: int
    scopes: list[str]
    rate_limit_per_minute: int
    active: bool
    created_by: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, app: IntegrationApp) -> AppOut:
        return cls(
            app_id=app.id,
            name=app.name,
            public_key_pem=app.public_key_pem,
            key_version=app.key_version,
            scopes=list(app.scopes),
            rate_limit_per_minute=app.rate_limit_per_minute,
            active=app.active,
            created_by=app.created_by,
            created_at=app.created_at,
            updated_at=app.updated_at,
        )


class AppCredentials(BaseModel):
    app: AppOut
    sm4_key_envelope: str = Field(
        description="本应用的 SM4 密钥（16 字节），以应用公钥做 SM2 加密（C1C3C2）后 Base64 编码；仅本次返回"
    )


def _public_key(pem: str) -> Sm2PublicKey:
    try:
        return Sm2PublicKey.from_pem(pem.encode())
    except ValueError:
        raise Problem(
            422, "INVALID_PUBLIC_KEY", "公钥无效", "请提供 PEM 格式（SubjectPublicKeyInfo）的 SM2 公钥。"
        ) from None


def _new_sm4_key(app: IntegrationApp, key: Sm2PublicKey, cipher: FieldCipher) -> str:
    """Give the app a fresh SM4 key, sealed at rest; returns its envelope for the app."""
    sm4_key = secrets.token_bytes(SM4_KEY_BYTES)
    sealed = cipher.encrypt(SM4_KEY_COLUMN, sm4_key.hex())
    assert sealed is not None
    app.sm4_key_enc = sealed
    return base64.b64encode(key.encrypt(sm4_key)).decode()


async def _app(session: SessionDep, app_id: str) -> IntegrationApp:
    app = await session.get(IntegrationApp, app_id)
    if app is None:
        raise Problem(404, "NOT_FOUND", "接入应用不存在", f"未找到接入应用 {app_id}。")
    return app


@router.post(
    "",
    status_code=201,
    response_model=AppCredentials,
    responses=problem_responses(401, 403, 422),
    summary="登记接入应用",
)
async def register_app(
    body: AppIn, request: Request, actor: AdminDep, session: SessionDep, cipher: CipherDep
) -> AppCredentials:
    key = _public_key(body.public_key_pem)
    app = IntegrationApp(
        id=f"ia-{secrets.token_hex(8)}",
        name=body.name,
        public_key_pem=key.to_pem().decode(),
        sm4_key_enc="",
        scopes=sorted({scope.value for scope in body.scopes}),
        rate_limit_per_minute=body.rate_limit_per_minute,
        created_by=actor.user_id,
    )
    envelope = _new_sm4_key(app, key, cipher)
    session.add(app)
    audit(
        session,
        actor,
        "integration_app.registered",
        "integration_app",
        app.id,
        detail={"scopes": app.scopes, "rate_limit_per_minute": app.rate_limit_per_minute},
        request=request,
    )
    await session.commit()
    return AppCredentials(app=AppOut.of(app), sm4_key_envelope=envelope)


@router.get("", response_model=list[AppOut], responses=problem_responses(401, 403), summary="接入应用列表")
async def list_apps(actor: AdminDep, session: SessionDep) -> list[AppOut]:
    apps = (await session.execute(select(IntegrationApp).order_by(col(IntegrationApp.created_at)))).scalars()
    return [AppOut.of(app) for app in apps]


@router.get("/{app_id}", response_model=AppOut, responses=problem_responses(401, 403, 404), summary="接入应用详情")
async def get_app(app_id: AppIdPath, actor: AdminDep, session: SessionDep) -> AppOut:
    return AppOut.of(await _app(session, app_id))


@router.patch(
    "/{app_id}",
    response_model=AppOut,
    responses=problem_responses(401, 403, 404, 422),
    summary="修改或停用接入应用",
)
async def update_app(
    app_id: AppIdPath, body: AppPatch, request: Request, actor: AdminDep, session: SessionDep
) -> AppOut:
    app = await _app(session, app_id)
    changes: dict[str, object] = {}
    if body.name is not None and body.name != app.name:
        app.name = changes["name"] = body.name
    if body.scopes is not None:
        scopes = sorted({scope.value for scope in body.scopes})
        if scopes != list(app.scopes):
            app.scopes = scopes
            changes["scopes"] = scopes
    if body.rate_limit_per_minute is not None and body.rate_limit_per_minute != app.rate_limit_per_minute:
        app.rate_limit_per_minute = changes["rate_limit_per_minute"] = body.rate_limit_per_minute
    if body.active is not None and body.active != app.active:
        app.active = changes["active"] = body.active
    if changes:
        app.updated_at = datetime.now(UTC)
        action = "integration_app.disabled" if changes.get("active") is False else "integration_app.updated"
        # The name is the partner's, not a person's: safe in the audit detail.
        audit(session, actor, action, "integration_app", app.id, detail={"changes": changes}, request=request)
        await session.commit()
    return AppOut.of(app)


@router.post(
    "/{app_id}/keys",
    response_model=AppCredentials,
    responses=problem_responses(401, 403, 404, 422),
    summary="轮换接入应用密钥",
)
async def rotate_key(
    app_id: AppIdPath, body: KeyIn, request: Request, actor: AdminDep, session: SessionDep, cipher: CipherDep
) -> AppCredentials:
    """The new public key replaces the old one at once, and the app gets a new SM4 key: register the new key when the
    partner is ready to switch. Nonces already used stay used."""
    key = _public_key(body.public_key_pem)
    app = await _app(session, app_id)
    app.public_key_pem = key.to_pem().decode()
    app.key_version += 1
    app.updated_at = datetime.now(UTC)
    envelope = _new_sm4_key(app, key, cipher)
    audit(
        session,
        actor,
        "integration_app.key_rotated",
        "integration_app",
        app.id,
        detail={"key_version": app.key_version},
        request=request,
    )
    await session.commit()
    return AppCredentials(app=AppOut.of(app), sm4_key_envelope=envelope)

"""Accounts, tokens, patients and staff."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.tables._types import Json, Timestamp


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: str = Field(primary_key=True, max_length=40)
    username: str = Field(unique=True, max_length=64)
    password_hash: str
    role: str = Field(max_length=16, index=True)
    display_name: str = Field(max_length=64)
    disabled: bool = False
    # An initial password someone else chose (batch-created staff): sign-ins reach only the password change until
    # the owner sets their own (api/auth.py PASSWORD_CHANGE_SCOPE).
    must_change_password: bool = Field(default=False, sa_column_kwargs={"server_default": "false"})
    # Staff's e-mail address (SM4-GCM ciphertext, FieldCipher column "email"), where notices the settings send by
    # e-mail reach them (finance: the daily reconciliation result). Set by the person or an admin.
    email_enc: str | None = None
    created_at: datetime = Timestamp(default_now=True)


class AccessToken(SQLModel, table=True):
    """Opaque bearer tokens, stored as their SM3 digest only."""

    __tablename__ = "access_tokens"

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(foreign_key="users.id", index=True)
    created_at: datetime = Timestamp(default_now=True)
    expires_at: datetime = Timestamp()
    revoked_at: datetime | None = Timestamp(nullable=True)
    # Refreshed at most once a minute by the token check; a token idle for longer than the setting is refused.
    last_used_at: datetime = Timestamp(default_now=True)
    # When the password (and second factor) behind this token was checked: sensitive actions want it recent.
    auth_time: datetime = Timestamp(default_now=True)
    # "full", or "mfa_enrolment": staff who must use a second factor and have none may only enrol one.
    scope: str = Field(default="full", max_length=16, sa_column_kwargs={"server_default": "full"})
    # The second factor checked at sign-in ("totp", "sms"), None for password only.
    mfa_method: str | None = Field(default=None, max_length=8)


class Patient(SQLModel, table=True):
    """PII columns hold SM4-GCM ciphertext (`*_enc`); `*_index` columns hold HMAC-SM3 blind indexes."""

    __tablename__ = "patients"

    id: str = Field(primary_key=True, max_length=40)
    user_id: str = Field(foreign_key="users.id", unique=True)
    name_enc: str | None = None
    id_card_enc: str | None = None
    id_card_index: str | None = Field(default=None, index=True, max_length=64)
    phone_enc: str | None = None
    phone_index: str | None = Field(default=None, index=True, max_length=64)
    address_enc: str | None = None
    sex: str | None = Field(default=None, max_length=8)
    birth_date: date | None = None
    identity_submission: str | None = Field(default=None, max_length=64)
    verified_at: datetime | None = Timestamp(nullable=True)
    verify_failure: str | None = None
    created_at: datetime = Timestamp(default_now=True)


class Consent(SQLModel, table=True):
    """A patient's acceptance of a versioned agreement (知情同意书, 隐私协议)."""

    __tablename__ = "consents"

    id: int | None = Field(default=None, primary_key=True)
    patient_id: str = Field(foreign_key="patients.id", index=True)
    document: str = Field(max_length=32)
    version: str = Field(max_length=16)
    accepted_at: datetime = Timestamp(default_now=True)
    client_ip: str | None = Field(default=None, max_length=64)


class Doctor(SQLModel, table=True):
    __tablename__ = "doctors"

    id: str = Field(primary_key=True, max_length=40)
    user_id: str = Field(foreign_key="users.id", unique=True)
    name: str = Field(max_length=32)
    title: str = Field(max_length=32)
    department_id: str = Field(foreign_key="departments.id", index=True)
    specialties: str = ""
    introduction: str = ""
    his_code: str = Field(max_length=32)
    # 医师执业证书编码, from the approved application; the supervision platform identifies the doctor by it.
    licence_no: str | None = Field(default=None, max_length=32)
    photo_url: str | None = None
    # Fee per service type offered, in fen: {"text": 2000, "phone": 3000, "video": 5000} (图文/电话/视频).
    service_fees: dict[str, int] = Json()
    active: bool = Field(default=True, sa_column_kwargs={"server_default": "true"})


class Pharmacist(SQLModel, table=True):
    __tablename__ = "pharmacists"

    id: str = Field(primary_key=True, max_length=40)
    user_id: str = Field(foreign_key="users.id", unique=True)
    name: str = Field(max_length=32)
    licence_no: str = Field(max_length=32)


class LivenessCheck(SQLModel, table=True):
    """A liveness and face-match check made during real-name verification (8.5.1.4), kept whatever its outcome."""

    __tablename__ = "liveness_checks"
    __table_args__ = (UniqueConstraint("patient_id", "submission", "token_digest", name="liveness_check_once"),)

    id: int | None = Field(default=None, primary_key=True)
    patient_id: str = Field(foreign_key="patients.id", index=True, max_length=40)
    submission: str = Field(max_length=64)
    # SM3 of the provider's one-time token: which live check this was, without keeping the token.
    token_digest: str = Field(max_length=64)
    passed: bool
    score: int | None = None
    reason: str | None = None
    provider_ref: str | None = Field(default=None, max_length=64)
    checked_at: datetime = Timestamp(default_now=True)

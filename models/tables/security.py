"""Sign-in security: failed-login counting and locks, second factors, pending second-factor checks, permissions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ARRAY, Column, DateTime, text
from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


class LoginThrottle(SQLModel, table=True):
    """Recent failed sign-ins per login name, and its lock.

    Keyed by the SM3 digest of the name as typed, existing or not: unknown names are counted and locked alike, so
    the answers never tell which names exist, and a password typed into the name field is not kept in the clear.
    """

    __tablename__ = "login_throttle"

    key: str = Field(primary_key=True, max_length=64)
    # Times of the failures inside the current window (older ones are dropped on the next failure).
    failures: list[datetime] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(DateTime(timezone=True)), nullable=False, server_default=text("'{}'")),
    )
    locked_until: datetime | None = Timestamp(nullable=True)


class MfaFactor(SQLModel, table=True):
    """A user's second factors (9.3.1.2.3). Secrets and phone are SM4-GCM ciphertext (`core.crypto.sm.FieldCipher`)."""

    __tablename__ = "mfa_factors"

    user_id: str = Field(primary_key=True, foreign_key="users.id", max_length=40)
    totp_secret_enc: str | None = None
    # A secret being enrolled: it replaces `totp_secret_enc` only once the user proves their app shows its codes.
    totp_pending_enc: str | None = None
    # The last time step whose code was accepted; that code and earlier ones are refused, so a code works once.
    totp_last_step: int | None = None
    totp_enrolled_at: datetime | None = Timestamp(nullable=True)
    sms_phone_enc: str | None = None
    sms_enrolled_at: datetime | None = Timestamp(nullable=True)


class MfaChallenge(SQLModel, table=True):
    """A short-lived second-factor check: a sign-in whose password was right, or a phone being enrolled for SMS.

    Its id is a bearer secret handed to the client, stored as its SM3 digest only, like access tokens.
    """

    __tablename__ = "mfa_challenges"

    id_hash: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=40)
    purpose: str = Field(max_length=16)
    created_at: datetime = Timestamp(default_now=True)
    expires_at: datetime = Timestamp()
    attempts: int = 0
    # The SMS code sent for this challenge, as a digest bound to the challenge.
    code_hash: str | None = Field(default=None, max_length=64)
    code_sent_at: datetime | None = Timestamp(nullable=True)
    sends: int = 0
    # For SMS enrolment: the phone being proved.
    phone_enc: str | None = None
    consumed_at: datetime | None = Timestamp(nullable=True)


class PermissionEntry(SQLModel, table=True):
    """The catalogue of permissions (`models.permissions.Permission`)."""

    __tablename__ = "permissions"

    code: str = Field(primary_key=True, max_length=48)
    name: str = Field(max_length=64)


class RolePermission(SQLModel, table=True):
    __tablename__ = "role_permissions"

    role: str = Field(primary_key=True, max_length=16)
    permission: str = Field(primary_key=True, foreign_key="permissions.code", max_length=48)
    granted_by: str | None = Field(default=None, max_length=40)
    granted_at: datetime = Timestamp(default_now=True)


class UserPermission(SQLModel, table=True):
    """A person's exception to their role: `granted` true adds the permission, false takes it away."""

    __tablename__ = "user_permissions"

    user_id: str = Field(primary_key=True, foreign_key="users.id", max_length=40)
    permission: str = Field(primary_key=True, foreign_key="permissions.code", max_length=48)
    granted: bool
    granted_by: str | None = Field(default=None, max_length=40)
    granted_at: datetime = Timestamp(default_now=True)
    reason: str | None = None

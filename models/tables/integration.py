"""Integrated systems (8.5.8): the applications allowed through the gateway, the nonces they have used, and the
per-minute counters the gateway shares between API processes (requests for rate limits, refusals for alerts)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ARRAY, Column, DateTime, ForeignKey, Index, String, text
from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


class IntegrationApp(SQLModel, table=True):
    __tablename__ = "integration_apps"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=100)
    # The app's SM2 public key (SubjectPublicKeyInfo PEM); requests are signed with the matching private key.
    public_key_pem: str
    # Bumped by every rotation, so audits and partners can tell which key was in force.
    key_version: int = 1
    # The SM4 key for encrypted bodies, sealed at rest with the PII key (FieldCipher, column "integration_sm4_key").
    sm4_key_enc: str
    scopes: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(String(32)), nullable=False, server_default=text("'{}'")),
    )
    rate_limit_per_minute: int = 600
    active: bool = True
    created_by: str | None = Field(default=None, max_length=40)
    created_at: datetime = Timestamp(default_now=True)
    updated_at: datetime = Timestamp(default_now=True)


class IntegrationNonce(SQLModel, table=True):
    """A nonce is refused while its row lives; rows expire when their request's timestamp leaves the window."""

    __tablename__ = "integration_nonces"
    __table_args__ = (Index("ix_integration_nonces_expiry", "app_id", "expires_at"),)

    app_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("integration_apps.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    nonce: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Timestamp()


class IntegrationCounter(SQLModel, table=True):
    """Hits of one kind ("request" or "refusal") for one app in one minute. Refusals of callers that name no known
    app share the app id "-", so an attacker inventing ids cannot add rows without bound."""

    __tablename__ = "integration_counters"

    app_id: str = Field(primary_key=True, max_length=40)
    kind: str = Field(primary_key=True, max_length=16)
    window_start: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True, nullable=False))
    hits: int = 0

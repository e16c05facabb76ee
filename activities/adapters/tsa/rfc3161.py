"""A real TSA over HTTP (RFC 3161 section 3.4): POST a DER TimeStampReq, read the DER TimeStampResp, verify it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.errors import AdapterError, AdapterRefusal
from activities.adapters.tsa import rejection_error
from core.crypto.tsp import (
    QUERY_MEDIA_TYPE,
    REPLY_MEDIA_TYPE,
    InvalidTimestamp,
    TimestampRejected,
    TimestampToken,
    build_request,
    load_certificates,
    parse_response,
    verify_token,
)
from core.settings import Settings

# HTTP answers a later attempt may get past; any other non-200 answer is the TSA refusing this request.
_RETRYABLE_STATUS = frozenset({408, 429})


class TsaConfig(BaseModel):
    """Where the TSA is and what its tokens must chain to."""

    model_config = ConfigDict(frozen=True)

    url: AnyHttpUrl
    # PEM bundle: the TSA certificate itself or the CA(s) that issue it.
    trust_anchors_pem: str
    hash_algorithm: Literal["sha256", "sm3"] = "sha256"
    username: str | None = None
    password: SecretStr | None = None
    # The SM2 signer ID the TSA signs tokens with; GM/T 0009's default unless the TSA says otherwise.
    sm2_signer_id: str = "1234567812345678"
    timeout_s: float = Field(default=10.0, gt=0)
    name: str = "rfc3161"

    @field_validator("trust_anchors_pem")
    @classmethod
    def _anchors_readable(cls, value: str) -> str:
        load_certificates(value)
        return value

    @classmethod
    def from_settings(cls, settings: Settings) -> TsaConfig:
        if not (settings.tsa_url and settings.tsa_trust_anchors_file):
            raise ValueError("the rfc3161 TSA needs QIHUANG_TSA_URL and QIHUANG_TSA_TRUST_ANCHORS_FILE")
        return cls(
            url=settings.tsa_url,  # type: ignore[arg-type]  # validated into AnyHttpUrl
            trust_anchors_pem=Path(settings.tsa_trust_anchors_file).read_text(encoding="ascii"),
            hash_algorithm=settings.tsa_hash_algorithm,  # type: ignore[arg-type]  # the settings pattern allows only these
            username=settings.tsa_username or None,
            password=settings.tsa_password or None,  # type: ignore[arg-type]
            timeout_s=settings.tsa_timeout_s,
        )


class Rfc3161Tsa:
    """Stamps through a configured RFC 3161 TSA and returns only tokens that verify against its trust anchors."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        config: TsaConfig | None = None,
    ) -> None:
        self.config = config = config or TsaConfig.from_settings(settings)
        self.name = config.name
        self.hash_algorithm: str = config.hash_algorithm
        self.trust_anchors = load_certificates(config.trust_anchors_pem)

    async def timestamp(self, *, data_digest: bytes, hash_algorithm: str) -> TimestampToken:
        request = build_request(data_digest, hash_algorithm)
        config = self.config
        auth = None
        if config.username is not None:
            password = config.password.get_secret_value() if config.password is not None else ""
            auth = httpx.BasicAuth(config.username, password)
        try:
            async with httpx.AsyncClient(timeout=config.timeout_s, auth=auth) as client:
                response = await client.post(
                    str(config.url), content=request.der, headers={"Content-Type": QUERY_MEDIA_TYPE}
                )
        except httpx.HTTPError as exc:
            raise AdapterError(f"TSA {self.name} unreachable: {exc!r}") from exc
        if response.status_code >= 500 or response.status_code in _RETRYABLE_STATUS:
            raise AdapterError(f"TSA {self.name} answered HTTP {response.status_code}")
        if response.status_code != 200:
            raise AdapterRefusal(f"HTTP_{response.status_code}", f"TSA {self.name}: {response.text[:200]}")
        media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != REPLY_MEDIA_TYPE:
            # Typically a proxy's or load balancer's error page in front of the TSA.
            raise AdapterError(f"TSA {self.name} answered {media_type or 'no content type'}, not {REPLY_MEDIA_TYPE}")
        try:
            token = parse_response(response.content)
            return verify_token(
                token,
                data_digest=data_digest,
                hash_algorithm=hash_algorithm,
                anchors=self.trust_anchors,
                nonce=request.nonce,
                sm2_signer_id=config.sm2_signer_id.encode(),
            )
        except TimestampRejected as rejected:
            raise rejection_error(self.name, rejected) from rejected
        except InvalidTimestamp as exc:
            # Retryable: a garbled or replayed answer may come right next time, and a rotated TSA certificate
            # needs only new trust anchors, after which the pending activity succeeds without being restarted.
            raise AdapterError(f"TSA {self.name} sent a token that does not verify: {exc}") from exc

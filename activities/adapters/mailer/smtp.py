"""A real mail server over SMTP (RFC 5321): STARTTLS or implicit TLS, AUTH when configured, one MIME message per
recipient with a plain-text and an HTML alternative in UTF-8.

SMTP has no idempotency key of its own. A send claims its key in `sent_emails` and keeps that row's transaction open
while it talks to the server, committing once the server has accepted the message: a concurrent attempt with the
same key waits on the row and then finds the mail sent, a failed one leaves no row and the next attempt sends. Only
an answer lost after the server accepted the message (the worker killed in that instant) sends it again, and then
with the same Message-ID, by which receiving systems recognise the copy.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from typing import Literal

import aiosmtplib
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.errors import AdapterError, AdapterRefusal
from activities.adapters.mailer import MESSAGE_REFUSED, RECIPIENT_REFUSED, message_id, sender_domain
from activities.adapters.sandbox import table
from core.crypto.sm import mask_email
from core.settings import Settings
from models.tables import SentEmail

_SENT = table(SentEmail)
# 7-bit transfer encodings (base64 or quoted-printable) for the UTF-8 parts, so no server needs 8BITMIME.
_POLICY = SMTP_POLICY.clone(cte_type="7bit")


class SmtpConfig(BaseModel):
    """Where the mail server is, how to reach it, and who the mail is from."""

    model_config = ConfigDict(frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(default=587, gt=0, lt=65536)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(min_length=3)
    sender_name: str = ""
    # PEM bundle the server's certificate must chain to; None: the system's CAs.
    ca_file: str | None = None
    timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("sender")
    @classmethod
    def _sender_is_an_address(cls, value: str) -> str:
        Address(addr_spec=value)  # raises on anything but one plain address
        if "@" not in value:
            raise ValueError("the sender must be an e-mail address")
        return value

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        if not (settings.smtp_host and settings.smtp_from):
            raise ValueError("the smtp mailer needs QIHUANG_SMTP_HOST and QIHUANG_SMTP_FROM")
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,  # type: ignore[arg-type]  # the settings pattern allows only these
            username=settings.smtp_username or None,
            password=settings.smtp_password or None,  # type: ignore[arg-type]
            sender=settings.smtp_from,
            sender_name=settings.smtp_from_name or settings.hospital_name,
            ca_file=settings.smtp_ca_file or None,
            timeout_s=settings.smtp_timeout_s,
        )


def compose(
    *, sender: str, sender_name: str, to: str, subject: str, text: str, html: str, msgid: str, at: datetime
) -> EmailMessage:
    """The MIME message: multipart/alternative, text first (what a plain client shows), HTML last (what others do).
    Non-ASCII headers go out as RFC 2047 encoded words, the parts in UTF-8."""
    message = EmailMessage(policy=_POLICY)
    message["From"] = Address(display_name=sender_name, addr_spec=sender)
    message["To"] = Address(addr_spec=to)
    message["Subject"] = subject
    message["Date"] = format_datetime(at)
    message["Message-ID"] = msgid
    # A machine's message (RFC 3834): vacation responders and the like do not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text, charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    return message


class SmtpMailer:
    """Sends each e-mail once per idempotency key through the configured SMTP server."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: Settings, config: SmtpConfig | None = None
    ) -> None:
        self._sessions = sessions
        self.config = config = config or SmtpConfig.from_settings(settings)
        self._domain = sender_domain(config.sender)
        self._tls = ssl.create_default_context(cafile=config.ca_file) if config.security != "none" else None

    async def send(self, *, idempotency_key: str, to: str, subject: str, text: str, html: str) -> str:
        msgid = message_id(idempotency_key, self._domain)
        try:
            message = compose(
                sender=self.config.sender,
                sender_name=self.config.sender_name,
                to=to,
                subject=subject,
                text=text,
                html=html,
                msgid=msgid,
                at=datetime.now(UTC),
            )
        except (ValueError, IndexError) as exc:  # headerregistry's answer to an address it cannot parse
            raise AdapterRefusal(RECIPIENT_REFUSED, f"收件地址 {mask_email(to)} 无效") from exc
        async with self._sessions() as session, session.begin():
            claimed = await session.scalar(
                insert(_SENT)
                .values(idempotency_key=idempotency_key, message_id=msgid, reply="", sent_at=datetime.now(UTC))
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
                .returning(_SENT.c.message_id)
            )
            if claimed is None:
                sent = await session.scalar(
                    select(_SENT.c.message_id).where(_SENT.c.idempotency_key == idempotency_key)
                )
                if sent is None:  # cannot happen: the conflicting row has committed
                    raise AdapterError(f"smtp: lost the record of key {idempotency_key!r}")
                return str(sent)
            # A failure from here on rolls the claim back, so the next attempt sends afresh.
            reply = await self._deliver(to, message)
            await session.execute(
                update(_SENT)
                .where(_SENT.c.idempotency_key == idempotency_key)
                .values(reply=reply[:500], sent_at=datetime.now(UTC))
            )
        return msgid

    async def _deliver(self, to: str, message: EmailMessage) -> str:
        config = self.config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.security == "ssl",
            start_tls=config.security == "starttls",
            tls_context=self._tls,
            timeout=config.timeout_s,
        )
        server = f"{config.host}:{config.port}"
        try:
            async with client:
                if config.username:
                    password = config.password.get_secret_value() if config.password else ""
                    await client.login(config.username, password)
                _, reply = await client.sendmail(config.sender, [to], message.as_bytes())
                return reply
        except aiosmtplib.SMTPRecipientsRefused as refused:
            (rejection,) = refused.recipients
            # Servers quote the address back; the error keeps it masked, like everything that may reach a log.
            detail = f"{rejection.code} {rejection.message}".replace(to, mask_email(to) or "")
            if rejection.code >= 500:
                raise AdapterRefusal(
                    RECIPIENT_REFUSED, f"邮件服务器拒收收件人 {mask_email(to)}（{detail}）"
                ) from refused
            raise AdapterError(f"smtp {server}: recipient deferred ({detail})") from refused
        except aiosmtplib.SMTPDataError as refused:
            if refused.code >= 500:
                detail = f"{refused.code} {refused.message}"
                raise AdapterRefusal(MESSAGE_REFUSED, f"邮件服务器拒收邮件（{detail}）") from refused
            raise AdapterError(f"smtp {server}: message deferred ({refused.code} {refused.message})") from refused
        except aiosmtplib.SMTPAuthenticationError as failed:
            # Retryable on purpose: the credentials are configuration; once corrected, the pending mail goes out.
            raise AdapterError(
                f"smtp {server}: AUTH refused ({failed.code} {failed.message}); "
                "check QIHUANG_SMTP_USERNAME and QIHUANG_SMTP_PASSWORD"
            ) from failed
        except aiosmtplib.SMTPSenderRefused as refused:
            raise AdapterError(
                f"smtp {server}: sender {config.sender} refused ({refused.code} {refused.message}); "
                "check QIHUANG_SMTP_FROM"
            ) from refused
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as failed:
            raise AdapterError(f"smtp {server}: {type(failed).__name__}: {failed}") from failed

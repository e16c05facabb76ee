"""A mail server on a free loopback port, inside the running event loop: aiosmtpd's SMTP protocol (RFC 5321, with
STARTTLS, implicit TLS and AUTH) over a mailbox that keeps every accepted message, parsed, and can be told to refuse
recipients. The mailbox is the `MailerSimulator` of the mailer contract."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as DEFAULT_POLICY
from pathlib import Path
from typing import Any, cast

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    # The login the client authenticated as, or None without AUTH.
    login: str | None
    tls: bool


@dataclass
class Mailbox:
    """The aiosmtpd handler: accepts what it is not told to refuse and keeps it."""

    received: list[Received] = field(default_factory=list)
    # Recipients answered 550 (permanent) or 450 (try later) at RCPT TO.
    refuse: set[str] = field(default_factory=set)
    defer: set[str] = field(default_factory=set)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown in local recipient table"
        if address in self.defer:
            return f"450 4.2.0 <{address}>: Recipient address rejected: Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = cast(bytes, envelope.original_content or envelope.content)
        message = cast(EmailMessage, message_from_bytes(raw, policy=DEFAULT_POLICY))
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.received.append(
            Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                raw=raw,
                message=message,
                login=login,
                # STARTTLS shows on the session; implicit TLS only on the transport.
                tls=session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            )
        )
        return f"250 2.0.0 Ok: queued as Q{len(self.received):04d}"

    async def delivered(self, address: str) -> list[str]:
        """Message-IDs of the messages delivered to `address`, oldest first."""
        return [str(r.message["Message-ID"]).strip() for r in self.received if address in r.rcpt_tos]


@dataclass(frozen=True)
class SelfSigned:
    """A self-signed certificate for 127.0.0.1: the server's, and the trust anchor the client is given."""

    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificate(directory: Path) -> SelfSigned:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "qihuang test smtp")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    found = SelfSigned(directory / "smtp-cert.pem", directory / "smtp-key.pem")
    found.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    found.key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return found


def password_check(accounts: dict[str, str]) -> Any:
    """An aiosmtpd authenticator accepting these logins and passwords (PLAIN and LOGIN)."""

    def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword) and accounts.get(data.login.decode()) == data.password.decode():
            return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)

    return authenticate


@asynccontextmanager
async def smtp_server(
    mailbox: Mailbox,
    *,
    starttls: SelfSigned | None = None,
    implicit_tls: SelfSigned | None = None,
    accounts: dict[str, str] | None = None,
) -> AsyncIterator[int]:
    """Serve `mailbox` on 127.0.0.1 and yield the port. With `starttls` the server offers STARTTLS and requires it;
    with `implicit_tls` the connection is TLS from the first byte (port 465 style); with `accounts` AUTH is required
    (over TLS when there is TLS)."""
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        with warnings.catch_warnings():
            # It warns of AUTH without TLS, not knowing an implicit-TLS connection is TLS (see below).
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            return _smtp()

    def _smtp() -> SMTP:
        return SMTP(
            mailbox,
            hostname="mail.test",
            tls_context=starttls.server_context() if starttls else None,
            require_starttls=starttls is not None,
            authenticator=password_check(accounts) if accounts else None,
            auth_required=bool(accounts),
            # aiosmtpd knows of TLS only through STARTTLS; an implicit-TLS connection is TLS all along.
            auth_require_tls=starttls is not None,
            loop=loop,
        )

    server = await loop.create_server(
        protocol, "127.0.0.1", 0, ssl=implicit_tls.server_context() if implicit_tls else None
    )
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()

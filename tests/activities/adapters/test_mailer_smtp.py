"""The SMTP mailer against a real SMTP server on loopback (aiosmtpd, tests/simulators/smtp.py): the MIME message as
received, STARTTLS, implicit TLS and AUTH, one delivery per key, and the server's refusals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy import select
from sqlmodel import col

from activities.adapters.errors import AdapterError, AdapterRefusal
from activities.adapters.mailer import RECIPIENT_REFUSED, message_id
from activities.adapters.mailer.contract import MailerContract
from activities.adapters.mailer.smtp import SmtpConfig, SmtpMailer
from models.tables import SentEmail
from tests.simulators.smtp import Mailbox, SelfSigned, make_certificate, smtp_server

SENDER = "duizhang@qihuang-hospital.example"
SUBJECT = "【对账异常】微信支付 2026-11-25 对账差错 2 笔待处理"
TEXT = "！！对账结果异常，请尽快核实处理！！\n\n微信支付 2026-11-25 对账发现差错 2 笔（长款 1、短款 1）。"
HTML = (
    '<div style="background:#c62828">对账结果异常，请尽快核实处理</div><p>微信支付 2026-11-25 对账发现差错 2 笔。</p>'
)


def _config(port: int, **overrides: Any) -> SmtpConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "sender": SENDER,
        "sender_name": "岐黄中医互联网医院",
        "timeout_s": 5,
    }
    return SmtpConfig(**{**values, **overrides})


def _address() -> str:
    return f"caiwu-{uuid.uuid4().hex[:10]}@hospital.example"


def _key() -> str:
    return f"reconcile-wechatpay-20261125:wechatpay-20261125-1:mismatch:u-{uuid.uuid4().hex[:8]}:email"


async def _send(mailer: SmtpMailer, to: str, key: str | None = None) -> str:
    return await mailer.send(idempotency_key=key or _key(), to=to, subject=SUBJECT, text=TEXT, html=HTML)


def _tls_config(port: int, certificate: SelfSigned, security: str) -> SmtpConfig:
    """Over TLS the client trusts the test server's certificate, and logs in."""
    return _config(
        port, security=security, username="duizhang", password="S3cret-mail", ca_file=str(certificate.cert_file)
    )


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    return make_certificate(tmp_path_factory.mktemp("smtp-tls"))


@pytest_asyncio.fixture
async def mailbox() -> AsyncIterator[tuple[Mailbox, int]]:
    box = Mailbox()
    async with smtp_server(box) as port:
        yield box, port


@pytest.fixture
def adapter(sessions, settings, mailbox) -> SmtpMailer:  # type: ignore[no-untyped-def]
    return SmtpMailer(sessions, settings, _config(mailbox[1]))


@pytest.fixture
def simulator(mailbox: tuple[Mailbox, int]) -> Mailbox:
    return mailbox[0]


class TestSmtpMailer(MailerContract):
    pass


async def _stored(sessions, key: str) -> SentEmail | None:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return (await session.scalars(select(SentEmail).where(col(SentEmail.idempotency_key) == key))).one_or_none()


async def test_the_message_arrives_as_utf8_mime_with_both_parts(adapter: SmtpMailer, mailbox, sessions) -> None:  # type: ignore[no-untyped-def]
    box, _ = mailbox
    to, key = _address(), _key()
    sent = await _send(adapter, to, key)

    (received,) = box.received
    assert (received.mail_from, received.rcpt_tos) == (SENDER, [to])
    message: EmailMessage = received.message
    # The Message-ID comes from the key, at the sender's domain.
    assert sent == message["Message-ID"].strip() == message_id(key, "qihuang-hospital.example")
    assert message["Subject"] == SUBJECT
    # On the wire the zh-CN header is RFC 2047 encoded words in UTF-8: 7-bit clean.
    header = next(line for line in received.raw.split(b"\r\n") if line.startswith(b"Subject:"))
    assert header.startswith(b"Subject: =?utf-8?")
    assert received.raw.isascii()
    assert message["From"].addresses[0].display_name == "岐黄中医互联网医院"
    assert message["From"].addresses[0].addr_spec == SENDER
    assert message["To"].addresses[0].addr_spec == to
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"] is not None
    assert message.get_content_type() == "multipart/alternative"
    plain, page = message.iter_parts()
    assert (plain.get_content_type(), plain.get_content_charset()) == ("text/plain", "utf-8")
    assert (page.get_content_type(), page.get_content_charset()) == ("text/html", "utf-8")
    assert plain.get_content().replace("\r\n", "\n").strip() == TEXT
    assert page.get_content().strip() == HTML

    row = await _stored(sessions, key)
    assert row is not None and row.message_id == sent
    assert row.reply.endswith("Ok: queued as Q0001")  # the server's answer, to find the mail in its logs


async def test_a_retry_with_the_same_key_sends_nothing_more(adapter: SmtpMailer, mailbox, sessions, settings) -> None:  # type: ignore[no-untyped-def]
    box, _ = mailbox
    to, key = _address(), _key()
    first = await _send(adapter, to, key)
    # A retried activity, even in another process: a new adapter with only the database in common.
    again = await _send(SmtpMailer(sessions, settings, adapter.config), to, key)
    # Two attempts at once: the second waits on the first's claim and then finds the mail sent.
    racing = await asyncio.gather(*(_send(adapter, to, f"{key}:race") for _ in range(3)))
    assert again == first
    assert len(set(racing)) == 1
    assert [r.rcpt_tos for r in box.received] == [[to], [to]]


async def test_starttls_and_auth(sessions, settings, certificate: SelfSigned) -> None:  # type: ignore[no-untyped-def]
    box = Mailbox()
    async with smtp_server(box, starttls=certificate, accounts={"duizhang": "S3cret-mail"}) as port:
        config = _tls_config(port, certificate, "starttls")
        to = _address()
        await _send(SmtpMailer(sessions, settings, config), to)
        (received,) = box.received
        assert (received.login, received.tls, received.rcpt_tos) == ("duizhang", True, [to])

        # A wrong password is the configuration's fault: retryable, so the mail goes once it is fixed; nothing stored.
        key = _key()
        wrong = config.model_copy(update={"password": SecretStr("wrong")})
        with pytest.raises(AdapterError, match=r"AUTH refused.*QIHUANG_SMTP_PASSWORD"):
            await _send(SmtpMailer(sessions, settings, wrong), to, key)
        assert await _stored(sessions, key) is None
        await _send(SmtpMailer(sessions, settings, config), to, key)
        assert len(box.received) == 2

        # Without AUTH the server refuses the mail.
        with pytest.raises(AdapterError):
            await _send(SmtpMailer(sessions, settings, config.model_copy(update={"username": None})), to)
        # A certificate the client does not trust: no mail goes out over that connection.
        with pytest.raises(AdapterError):
            await _send(SmtpMailer(sessions, settings, config.model_copy(update={"ca_file": None})), to)
        assert len(box.received) == 2


async def test_implicit_tls(sessions, settings, certificate: SelfSigned) -> None:  # type: ignore[no-untyped-def]
    box = Mailbox()
    async with smtp_server(box, implicit_tls=certificate, accounts={"duizhang": "S3cret-mail"}) as port:
        config = _tls_config(port, certificate, "ssl")
        to = _address()
        await _send(SmtpMailer(sessions, settings, config), to)
        (received,) = box.received
        assert (received.login, received.tls) == ("duizhang", True)


async def test_a_refused_recipient_is_a_final_refusal(adapter: SmtpMailer, mailbox, sessions) -> None:  # type: ignore[no-untyped-def]
    box, _ = mailbox
    to, key = _address(), _key()
    box.refuse.add(to)
    with pytest.raises(AdapterRefusal) as refused:
        await _send(adapter, to, key)
    assert refused.value.code == RECIPIENT_REFUSED
    assert "550" in refused.value.message and "邮件服务器拒收收件人" in refused.value.message
    assert to not in refused.value.message  # the address masked, the server's words kept
    assert box.received == [] and await _stored(sessions, key) is None


async def test_a_deferred_recipient_is_retried(adapter: SmtpMailer, mailbox, sessions) -> None:  # type: ignore[no-untyped-def]
    box, _ = mailbox
    to, key = _address(), _key()
    box.defer.add(to)
    with pytest.raises(AdapterError, match="450"):
        await _send(adapter, to, key)
    box.defer.clear()
    await _send(adapter, to, key)
    assert [r.rcpt_tos for r in box.received] == [[to]]


async def test_no_server_is_retryable(sessions, settings) -> None:  # type: ignore[no-untyped-def]
    box = Mailbox()
    async with smtp_server(box) as port:
        pass  # closed again: nothing listens on the port now
    with pytest.raises(AdapterError):
        await _send(SmtpMailer(sessions, settings, _config(port)), _address())


def test_config_from_settings(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="QIHUANG_SMTP_HOST"):
        SmtpConfig.from_settings(settings)
    config = SmtpConfig.from_settings(
        settings.model_copy(
            update={"smtp_host": "smtp.hospital.example", "smtp_from": SENDER, "smtp_username": "duizhang"}
        )
    )
    assert (config.port, config.security, config.username, config.password) == (587, "starttls", "duizhang", None)
    assert config.sender_name == settings.hospital_name

"""Notices by e-mail (8.4.3.4): the reconciliation notices reach finance staff with an address on record through the
SMTP mailer, beside the inbox and SMS, once per key; an alert is marked in the subject and opens with a banner."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import update
from sqlmodel import col

from activities.adapters.mailer.smtp import SmtpConfig, SmtpMailer
from activities.adapters.notifier.sandbox import SandboxNotifier
from activities.notices import NoticeActivities, render_email
from core.crypto.sm import FieldCipher
from models.common import Channel, Role
from models.notify import Notice
from models.permissions import Permission
from models.tables import User, UserPermission
from tests.api.helpers import make_user
from tests.simulators.smtp import Mailbox, smtp_server
from workflows.reconciliation import FINANCE

MISMATCH = {
    "channel": "微信支付",
    "date": "2026-11-25",
    "run_id": "wechatpay-20261125-1",
    "count": "2",
    "matched": "118",
    "channel_only": "1",
    "platform_only": "1",
    "amount_mismatch": "0",
    "status_mismatch": "0",
    "channel_paid": "1234.50",
    "channel_refunded": "12.00",
    "platform_paid": "1234.50",
    "platform_refunded": "12.00",
}


@pytest.fixture
def cipher(settings) -> FieldCipher:  # type: ignore[no-untyped-def]
    return FieldCipher(settings.pii_key, settings.blind_index_key)


@pytest_asyncio.fixture
async def mail() -> AsyncIterator[tuple[Mailbox, int]]:
    box = Mailbox()
    async with smtp_server(box) as port:
        yield box, port


async def _finance(sessions, cipher: FieldCipher, email: str | None) -> str:  # type: ignore[no-untyped-def]
    user_id, _ = await make_user(sessions, Role.FINANCE)
    async with sessions() as session, session.begin():
        await session.execute(
            update(User).where(col(User.id) == user_id).values(email_enc=cipher.encrypt("email", email))
        )
    return user_id


def _notices(sessions, settings, cipher: FieldCipher, port: int) -> NoticeActivities:  # type: ignore[no-untyped-def]
    config = SmtpConfig(host="127.0.0.1", port=port, security="none", sender="duizhang@hospital.example")
    return NoticeActivities(
        sessions,
        cipher,
        SandboxNotifier(sessions, settings),
        (Channel.APP, Channel.SMS, Channel.EMAIL),
        mailer=SmtpMailer(sessions, settings, config),
        email_templates=settings.notify_email_templates,
    )


def _address() -> str:
    return f"caiwu-{uuid.uuid4().hex[:10]}@hospital.example"


async def test_a_mismatch_mails_finance_an_alert_once(sessions, settings, cipher, mail) -> None:  # type: ignore[no-untyped-def]
    box, port = mail
    address = _address()
    await _finance(sessions, cipher, address)
    notices = _notices(sessions, settings, cipher, port)
    notice = Notice(
        key=f"reconcile-wechatpay-{uuid.uuid4().hex[:8]}:wechatpay-20261125-1:mismatch",
        user_ref="role:finance",
        template="reconciliation_mismatch",
        params=MISMATCH,
    )
    assert await notices.send_notice(notice) >= 1
    (received,) = [r for r in box.received if address in r.rcpt_tos]
    message = received.message
    assert message["Subject"] == "【对账异常】微信支付 2026-11-25 对账差错 2 笔待处理"
    plain, page = message.iter_parts()
    text = plain.get_content()
    assert text.startswith("！！对账结果异常，请尽快核实处理！！")
    assert "对账发现差错 2 笔（长款 1、短款 1" in text
    html = page.get_content()
    assert "background:#c62828" in html and "对账结果异常，请尽快核实处理" in html
    assert "<th" in html and "1234.50" in html  # the day's figures as a table

    # The activity retried (after a later channel failed, say): nobody is mailed again.
    count = len(box.received)
    await notices.send_notice(notice)
    assert len(box.received) == count


async def test_only_the_configured_notices_go_by_email(sessions, settings, cipher, mail) -> None:  # type: ignore[no-untyped-def]
    box, port = mail
    address = _address()
    user_id = await _finance(sessions, cipher, address)
    notices = _notices(sessions, settings, cipher, port)
    await notices.send_notice(
        Notice(
            key=f"refund-{uuid.uuid4().hex[:8]}:failed",
            user_ref="role:finance",
            template="refund_failed_finance",
            params={"refund_id": "r-1", "amount": "10.00", "reason": "渠道拒绝"},
        )
    )
    assert not [r for r in box.received if address in r.rcpt_tos]
    # A balanced day's result is mailed too, without the alert mark.
    await notices.send_notice(
        Notice(key=f"{user_id}:balanced", user_ref="role:finance", template="reconciliation_balanced", params=MISMATCH)
    )
    (received,) = [r for r in box.received if address in r.rcpt_tos]
    assert received.message["Subject"] == "【对账结果】微信支付 2026-11-25 对账平衡"
    plain, page = received.message.iter_parts()
    assert "background:#c62828" not in page.get_content() and not plain.get_content().startswith("！！")


async def test_a_refused_address_fails_no_notice(sessions, settings, cipher, mail) -> None:  # type: ignore[no-untyped-def]
    box, port = mail
    refused, fine = _address(), _address()
    box.refuse.add(refused)
    await _finance(sessions, cipher, refused)
    await _finance(sessions, cipher, fine)
    notices = _notices(sessions, settings, cipher, port)
    reached = await notices.send_notice(
        Notice(
            key=f"reconcile-{uuid.uuid4().hex[:8]}:failed",
            user_ref="role:finance",
            template="reconciliation_failed",
            params={"channel": "支付宝", "date": "2026-11-25", "reason": "账单格式无法识别", "run_id": "r-1"},
        )
    )
    assert reached >= 2
    assert not [r for r in box.received if refused in r.rcpt_tos]
    (received,) = [r for r in box.received if fine in r.rcpt_tos]
    assert received.message["Subject"] == "【对账异常】支付宝 2026-11-25 对账未能完成"


def test_other_notices_take_their_title_as_subject() -> None:
    subject, text, html = render_email(
        "bill_paid",
        "支付成功",
        "挂号费已支付成功。查看详情：https://app.example/bills/b-1",
        {"link": "https://app.example/bills/b-1"},
    )
    assert subject == "支付成功" and not text.startswith("！！")
    assert '<a href="https://app.example/bills/b-1">' in html and "<table" not in html


async def test_finance_results_reach_only_finance_staff_who_hold_the_permission(
    sessions, settings, cipher, mail
) -> None:  # type: ignore[no-untyped-def]
    box, port = mail
    allowed, revoked = _address(), _address()
    await _finance(sessions, cipher, allowed)
    revoked_id = await _finance(sessions, cipher, revoked)
    admin_id, _ = await make_user(sessions, Role.ADMIN)  # admins read reconciliation too, but are not finance
    async with sessions() as session, session.begin():
        await session.execute(
            update(User).where(col(User.id) == admin_id).values(email_enc=cipher.encrypt("email", _address()))
        )
        session.add(UserPermission(user_id=revoked_id, permission=str(Permission.RECONCILIATION_READ), granted=False))
    notices = _notices(sessions, settings, cipher, port)
    await notices.send_notice(
        Notice(key=f"{revoked_id}:mismatch", user_ref=FINANCE, template="reconciliation_mismatch", params=MISMATCH)
    )
    mailed = {address for received in box.received for address in received.rcpt_tos}
    assert allowed in mailed
    assert revoked not in mailed
    async with sessions() as session:
        admin_address = cipher.decrypt("email", (await session.get(User, admin_id)).email_enc)  # type: ignore[union-attr]
    assert admin_address not in mailed

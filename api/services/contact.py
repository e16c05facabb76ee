"""Staff e-mail addresses: where the notices the settings send by e-mail reach them (finance: the daily
reconciliation result, 8.4.3.4). Kept encrypted like phones; shown masked."""

from __future__ import annotations

import re

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import Actor
from api.errors import Problem
from api.services.audit import audit
from core.crypto.sm import FieldCipher, mask_email
from models.common import Role
from models.tables import User

# A plain ASCII mailbox at a domain of dot-separated labels: what every mail server accepts, and nothing (no spaces,
# no line breaks, no display name) that could reach a mail header as more than an address.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+")
COLUMN = "email"


def normalize_email(raw: str | None) -> str | None:
    """The address to store (domain in lower case), None to clear it; 422 INVALID_EMAIL for anything else."""
    value = (raw or "").strip()
    if not value:
        return None
    if len(value) > 254 or not _EMAIL.fullmatch(value) or ".." in value:
        raise Problem(
            422,
            "INVALID_EMAIL",
            "电子邮件地址无效",
            "请填写形如 name@hospital.cn 的电子邮件地址（英文字母、数字及常用符号）。",
            errors=[{"field": "body.email", "message": "电子邮件地址无效", "type": "email"}],
        )
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


async def email_of(session: AsyncSession, cipher: FieldCipher, user_id: str) -> str | None:
    """The user's address, masked."""
    token = await session.scalar(select(col(User.email_enc)).where(col(User.id) == user_id))
    return mask_email(cipher.decrypt(COLUMN, token))


async def set_email(
    session: AsyncSession, cipher: FieldCipher, actor: Actor, user_id: str, raw: str | None, request: Request
) -> str | None:
    """Store (or clear) a staff member's address and audit who changed it; returns it masked. 404 for an unknown
    user, 409 NOT_STAFF for a patient (patients are reached in the app and by SMS)."""
    email = normalize_email(raw)
    user = await session.get(User, user_id)
    if user is None:
        raise Problem(404, "NOT_FOUND", "未找到", "用户不存在")
    if user.role == Role.PATIENT:
        raise Problem(409, "NOT_STAFF", "该账号不是员工账号", "只有员工账号可以设置接收通知的电子邮件地址。")
    user.email_enc = cipher.encrypt(COLUMN, email)
    # Whether an address is set, never the address itself (audit details hold no contact data).
    audit(
        session,
        actor,
        "account.email_changed",
        "user",
        user.id,
        detail={"email_set": email is not None},
        request=request,
    )
    await session.commit()
    return mask_email(email)

"""Second factors (9.3.1.2.3): TOTP from an authenticator app, or a code texted through the notifier adapter.

A challenge is a short-lived, single-use check of one of them: the second step of a sign-in, or the proof that a
phone being enrolled for SMS is the user's. Each allows a few wrong codes and a few texts, then is dead.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from activities.adapters.errors import AdapterError, AdapterRefusal
from activities.adapters.notifier import Notifier
from api.errors import Problem
from core.crypto.sm import FieldCipher, sm3_hex
from core.passwords import new_token, token_digest
from core.settings import Settings
from core.totp import matching_step, secret_key
from models.common import Channel
from models.tables import MfaChallenge, MfaFactor

Method = Literal["totp", "sms"]
TOTP: Method = "totp"
SMS: Method = "sms"

LOGIN = "login"
SMS_ENROLMENT = "sms_enrolment"

MAX_ATTEMPTS = 5
MAX_SENDS = 3
RESEND_AFTER_S = 60

# Cipher column labels: the label is bound into the ciphertext, and a pending secret becomes the active one as is.
TOTP_COLUMN = "mfa_factors.totp_secret"
PHONE_COLUMN = "phone"


def enrolled_methods(factor: MfaFactor | None) -> list[Method]:
    if factor is None:
        return []
    enrolled: list[Method] = []
    if factor.totp_secret_enc:
        enrolled.append(TOTP)
    if factor.sms_phone_enc:
        enrolled.append(SMS)
    return enrolled


async def factor_for_update(session: AsyncSession, user_id: str) -> MfaFactor | None:
    """The user's factors, locked: accepting a TOTP code moves `totp_last_step`, which must not race."""
    return (
        await session.execute(select(MfaFactor).where(col(MfaFactor.user_id) == user_id).with_for_update())
    ).scalar_one_or_none()


async def open_challenge(
    session: AsyncSession, settings: Settings, user_id: str, purpose: str, *, phone_enc: str | None = None
) -> str:
    """Add a challenge to the caller's transaction; returns its id (the client's only copy)."""
    # The user's dead challenges go as a new one comes, so the table stays as small as the sign-ins in progress.
    await session.execute(
        delete(MfaChallenge).where(
            col(MfaChallenge.user_id) == user_id, col(MfaChallenge.expires_at) < datetime.now(UTC)
        )
    )
    challenge_id = new_token()
    session.add(
        MfaChallenge(
            id_hash=token_digest(challenge_id),
            user_id=user_id,
            purpose=purpose,
            expires_at=datetime.now(UTC) + timedelta(seconds=settings.mfa_challenge_ttl_s),
            phone_enc=phone_enc,
        )
    )
    return challenge_id


async def live_challenge(session: AsyncSession, challenge_id: str, purpose: str) -> MfaChallenge:
    """The challenge, locked for this transaction; 401 MFA_CHALLENGE_INVALID when unknown, used, expired or spent."""
    challenge = (
        await session.execute(
            select(MfaChallenge)
            .where(
                col(MfaChallenge.id_hash) == token_digest(challenge_id),
                col(MfaChallenge.purpose) == purpose,
                col(MfaChallenge.consumed_at).is_(None),
                col(MfaChallenge.expires_at) > datetime.now(UTC),
                col(MfaChallenge.attempts) < MAX_ATTEMPTS,
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if challenge is None:
        again = "请重新登录。" if purpose == LOGIN else "请重新发起绑定。"
        raise Problem(401, "MFA_CHALLENGE_INVALID", "验证已失效", f"验证已过期、已使用或错误次数过多，{again}")
    return challenge


def _code_digest(challenge: MfaChallenge, code: str) -> str:
    # Bound to the challenge, so a code's digest is useless for any other challenge.
    return sm3_hex(f"{challenge.id_hash}:{code}".encode())


async def send_code(
    session: AsyncSession, notifier: Notifier, challenge: MfaChallenge, phone: str, settings: Settings
) -> None:
    """Text a new code for the challenge (the previous one stops working). Commits before sending, so a code that
    went out is always the one on record."""
    now = datetime.now(UTC)
    if challenge.sends >= MAX_SENDS:
        raise Problem(429, "SMS_LIMIT_REACHED", "验证码发送次数过多", "本次验证已不能再发送验证码，请重新开始。")
    if challenge.code_sent_at is not None:
        wait = RESEND_AFTER_S - int((now - challenge.code_sent_at).total_seconds())
        if wait > 0:
            raise Problem(
                429,
                "SMS_TOO_FREQUENT",
                "验证码发送过于频繁",
                f"请在 {wait} 秒后再获取验证码。",
                headers={"Retry-After": str(wait)},
            )
    code = f"{secrets.randbelow(10**6):06d}"
    challenge.code_hash = _code_digest(challenge, code)
    challenge.code_sent_at = now
    challenge.sends += 1
    sends, user_id, key_base = challenge.sends, challenge.user_id, challenge.id_hash
    await session.commit()
    minutes = max(1, settings.mfa_challenge_ttl_s // 60)
    try:
        await notifier.send(
            idempotency_key=f"mfa-sms:{key_base}:{sends}",
            channel=Channel.SMS,
            phone=phone,
            user_id=user_id,
            title="身份验证码",
            body=f"您的验证码为 {code}，{minutes} 分钟内有效，请勿告知他人。如非本人操作，请尽快修改密码。",
        )
    except (AdapterError, AdapterRefusal) as exc:
        raise Problem(503, "SMS_UNAVAILABLE", "短信服务暂不可用", "请稍后重试，或改用验证器应用的动态码。") from exc


def sms_code_matches(challenge: MfaChallenge, code: str) -> bool:
    if challenge.code_hash is None:
        return False
    return secrets.compare_digest(challenge.code_hash, _code_digest(challenge, code))


def totp_matches(cipher: FieldCipher, factor: MfaFactor, code: str, *, pending: bool = False) -> bool:
    """Check a code against the active (or the pending) secret; an accepted code's step is recorded, and codes of
    that step or earlier are refused from then on (RFC 6238 section 5.2: one use per code)."""
    secret = cipher.decrypt(TOTP_COLUMN, factor.totp_pending_enc if pending else factor.totp_secret_enc)
    if secret is None:
        return False
    step = matching_step(secret_key(secret), code, time.time())
    if step is None or (factor.totp_last_step is not None and step <= factor.totp_last_step):
        return False
    factor.totp_last_step = step
    return True


def no_pending_enrolment() -> Problem:
    return Problem(409, "NO_PENDING_ENROLMENT", "没有待确认的绑定", "请先发起绑定，再提交验证码。")


def wrong_code(status: int = 401) -> Problem:
    """401 when signing in; 422 when enrolling, where the caller's session itself is fine."""
    return Problem(status, "MFA_CODE_INVALID", "验证码错误", "验证码错误或已过期，请重新输入。")

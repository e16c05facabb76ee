"""Changing one's own password (9.3.1.2.5): the old one must be right, the new one must pass the complexity rule,
and every other session of the account ends. Changing an initial password (batch-created staff) also lifts this
session's `password_change` scope to the one the account now has."""

from __future__ import annotations

from datetime import UTC, datetime

from anyio import to_thread
from fastapi import Request
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import Actor
from api.errors import Problem
from api.services import lockout
from api.services.audit import audit
from api.services.sign_in import record_failure, token_scope
from core.password_policy import MESSAGES, password_violations
from core.passwords import hash_password, token_digest, verify_password
from core.settings import Settings
from models.tables import AccessToken, User


def weak_password(violations: list[str]) -> Problem:
    """422 WEAK_PASSWORD listing every rule broken, one zh-CN message each, so a client can show them all at once."""
    errors = [
        {"field": "body.new_password", "message": MESSAGES[rule], "type": f"password.{rule}"} for rule in violations
    ]
    return Problem(
        422,
        "WEAK_PASSWORD",
        "密码不符合安全要求",
        "；".join(MESSAGES[rule] for rule in violations) + "。",
        errors=errors,
    )


async def change_password(
    session: AsyncSession,
    settings: Settings,
    request: Request,
    actor: Actor,
    token: str,
    old_password: str,
    new_password: str,
) -> int:
    """Set the new password and revoke the account's other tokens; returns how many were revoked."""
    user = await session.get(User, actor.user_id)
    assert user is not None  # the actor's token was just checked
    if not await to_thread.run_sync(verify_password, old_password, user.password_hash):
        # A guess at the password like any other: it counts toward the lock of the account's login name.
        await record_failure(
            session, settings, request, lockout.throttle_key(user.username), ("user", user.id), "password_change"
        )
        raise Problem(403, "WRONG_PASSWORD", "原密码错误", "请输入正确的当前密码。")
    violations = password_violations(new_password, user.username)
    if new_password == old_password:
        violations.append("reuse")
    if violations:
        raise weak_password(violations)
    user.password_hash = await to_thread.run_sync(hash_password, new_password)
    if user.must_change_password:
        user.must_change_password = False
        current = await session.get(AccessToken, token_digest(token))
        assert current is not None  # the actor's token was just checked
        current.scope = await token_scope(session, settings, user, current.mfa_method)
    revoked = await session.execute(
        update(AccessToken)
        .where(
            col(AccessToken.user_id) == user.id,
            col(AccessToken.token_hash) != token_digest(token),
            col(AccessToken.revoked_at).is_(None),
        )
        .values(revoked_at=datetime.now(UTC))
    )
    count = int(revoked.rowcount)  # type: ignore[attr-defined]
    audit(session, actor, "auth.password_changed", "user", user.id, detail={"sessions_revoked": count}, request=request)
    await session.commit()
    return count

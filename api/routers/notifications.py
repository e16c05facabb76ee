"""The caller's own notices (any role). Another user's notice is answered as if it did not exist."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path

from api.auth import ActorDep
from api.deps import SessionDep
from api.errors import Problem, problem_responses
from api.queries import notifications
from api.schemas.common import Limit, Offset
from api.schemas.notifications import NotificationOut, NotificationPage

router = APIRouter(prefix="/me/notifications", tags=["notifications"])


@router.get("", response_model=NotificationPage, responses=problem_responses(401, 422), summary="我的消息")
async def my_notifications(
    actor: ActorDep,
    session: SessionDep,
    limit: Limit = 20,
    offset: Offset = 0,
) -> NotificationPage:
    """Newest first."""
    items, total, unread = await notifications.list_notifications(session, actor.user_id, limit=limit, offset=offset)
    return NotificationPage(
        items=[NotificationOut.model_validate(item) for item in items],
        total=total,
        unread=unread,
        limit=limit,
        offset=offset,
    )


@router.post(
    "/{notification_id}/read",
    response_model=NotificationOut,
    responses=problem_responses(401, 404),
    summary="标记消息已读",
)
async def mark_read(
    notification_id: Annotated[int, Path(ge=1, le=2**31 - 1)], actor: ActorDep, session: SessionDep
) -> NotificationOut:
    notification = await notifications.mark_read(session, actor.user_id, notification_id, datetime.now(UTC))
    if notification is None:
        raise Problem(404, "NOT_FOUND", "请求的资源不存在", "消息不存在。")
    return NotificationOut.model_validate(notification)

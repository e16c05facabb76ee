"""The caller's in-app notices."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import Page


class NotificationOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 1,
                    "template": "visit_booked",
                    "title": "挂号成功",
                    "body": "您已成功预约李时主任医师 3 月 1 日 9:00 的复诊。",
                    "created_at": "2025-02-27T08:00:00Z",
                    "read_at": None,
                }
            ]
        },
    )

    id: int
    template: str
    title: str
    body: str
    created_at: datetime
    read_at: datetime | None


class NotificationPage(Page[NotificationOut]):
    unread: int = Field(description="未读总数", examples=[3])

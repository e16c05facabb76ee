"""Admin shapes for a doctor's public profile and fees (8.1.1.3, 8.6.1 c/d)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.catalogue import DoctorTitle, ServiceType
from api.services.schedule_rules import MAX_FEE_FEN

Fee = Annotated[int, Field(ge=0, le=MAX_FEE_FEN)]


class DoctorPatch(BaseModel):
    """Fields to change; omitted ones stay."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "主任医师",
                    "specialties": "慢性胃炎、功能性消化不良",
                    "service_fees": {"text": 5000, "video": 10000},
                    "active": True,
                }
            ]
        },
    )

    title: DoctorTitle | None = None
    specialties: str | None = Field(default=None, max_length=500)
    introduction: str | None = Field(default=None, max_length=4000)
    photo_url: str | None = Field(default=None, max_length=500, pattern=r"^https?://\S+$")
    service_fees: dict[ServiceType, Fee] | None = Field(
        default=None, description="开通的问诊方式及各自费用（分），整体替换；空对象表示按职称收费标准"
    )
    active: bool | None = None

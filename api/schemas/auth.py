"""Login answers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class TokenOut(BaseModel):
    access_token: str = Field(description="不透明的访问令牌，放在 Authorization: Bearer 头中")
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="有效期（秒）", examples=[28800])

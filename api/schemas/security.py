"""Admin shapes: permissions of roles and people, account unlocks, the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.common import Role
from models.permissions import FinanceLevel, Permission

Reason = Annotated[str, Field(min_length=1, max_length=500, description="操作原因，记入审计日志")]


class PermissionOut(BaseModel):
    code: Permission
    name: str = Field(examples=["查询与导出审计日志"])
    roles: list[Role] = Field(description="默认持有此权限的角色")


class RolePermissionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    granted: bool = Field(description="true 授予该角色，false 收回")
    reason: Reason


class RolePermissionsOut(BaseModel):
    role: Role
    permissions: list[Permission]


class FinanceLevelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: FinanceLevel = Field(
        description="clerk 财务专员：查看与导出对账结果；supervisor 财务主管：另可处理差错、核销坏账"
    )
    reason: Reason


class UserPermissionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effect: Literal["grant", "revoke", "inherit"] = Field(
        description="grant 单独授予；revoke 单独收回（即使角色持有）；inherit 取消个人设置，按角色默认"
    )
    reason: Reason


class UserPermissionOut(BaseModel):
    code: Permission
    name: str
    held: bool = Field(description="该用户当前是否持有")
    source: Literal["role", "grant", "revoke", "none"] = Field(
        description="role 来自角色默认；grant/revoke 个人授予/收回；none 未持有"
    )


class UserPermissionsOut(BaseModel):
    user_id: str
    role: Role
    permissions: list[UserPermissionOut]


class UnlockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class UnlockOut(BaseModel):
    user_id: str
    was_locked: bool = Field(description="解锁前是否处于锁定状态")


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    actor_user_id: str | None = Field(description="操作者；登录前的事件（如登录失败）为空")
    action: str = Field(examples=["auth.login_failed"])
    subject_type: str = Field(examples=["user"])
    subject_id: str
    reason: str | None
    detail: dict[str, Any]
    client_ip: str | None
    request_id: str | None

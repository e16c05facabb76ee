"""Shapes of the institution's registration with the supervision platform (8.5.4)."""

from __future__ import annotations

import ipaddress
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.institution import InstitutionRecord, InstitutionStatus, Verification


class InstitutionIn(BaseModel):
    """The details the platform registers (8.5.4.1): number, name, type and the IP addresses the hospital connects
    from."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "code": "PDY00001X11010111A1001",
                    "name": "岐黄中医互联网医院",
                    "kind": "互联网医院",
                    "licence_no": "PDY00001X110101",
                    "access_ips": ["203.0.113.10", "203.0.113.0/28"],
                }
            ]
        },
    )

    code: str = Field(min_length=4, max_length=32, pattern=r"^[0-9A-Za-z-]+$", description="机构编号（登记号）")
    name: str = Field(min_length=2, max_length=100, description="机构名称")
    kind: str = Field(min_length=2, max_length=32, description="机构类型")
    licence_no: str = Field(min_length=1, max_length=40, description="医疗机构执业许可证登记号")
    access_ips: list[str] = Field(min_length=1, max_length=32, description="接入 IP 地址（可含网段）")

    @field_validator("access_ips")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise ValueError(f"接入 IP 地址“{address}”无效") from None
        return addresses


class InstitutionOut(BaseModel):
    id: str
    code: str
    name: str
    kind: str
    licence_no: str
    access_ips: list[str]
    status: InstitutionStatus
    attempt: int
    platform_ref: str | None = Field(description="监管平台受理号")
    reason: str | None = Field(description="未通过的原因")
    submitted_at: datetime | None
    decided_at: datetime | None
    verification: Verification | None = Field(description="最近一次经监管平台机构查询接口核验的结果")
    verified_at: datetime | None = Field(description="监管平台最近一次确认该机构的时间")
    suspended_at: datetime | None = Field(description="因监管平台不再确认而暂停的时间（暂停期间不接受新的预约挂号）")
    created_at: datetime


class RegistrationOut(BaseModel):
    institution_id: str
    status: InstitutionStatus
    attempt: int
    workflow_id: str


class ReverificationOut(BaseModel):
    """The re-verification started (or the one already running); `GET …/reverifications` lists the outcomes."""

    institution_id: str
    status: InstitutionStatus
    workflow_id: str


class ReverificationRecordOut(BaseModel):
    """One re-verification: who asked (a user id, or `system` for the daily check), when, what the platform
    answered, and the status before and after."""

    id: str
    requested_by: str
    checked_at: datetime
    verified: bool
    detail: str
    platform_record: InstitutionRecord | None
    status_before: InstitutionStatus
    status_after: InstitutionStatus

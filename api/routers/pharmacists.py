"""Pharmacists' duty (8.3.1.1): signing in for and out of duty, and who is on duty now.

A period is a plain record with no deadline, approval or outside call, so the API writes it (audited) and PostgreSQL
keeps one open period per pharmacist. The periods are what the duty check reads (workflows/duty.py): during business
hours, a gap with nobody signed in alerts the admins.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.auth import ActorDep, PharmacistDep
from api.deps import SessionDep
from api.errors import Problem, problem_responses
from api.services import duty
from api.services.audit import audit
from models.common import Role

router = APIRouter(prefix="/pharmacists", tags=["pharmacists"])


class DutyIn(BaseModel):
    on_duty: bool = Field(description="true：签到上岗；false：签退离岗")


class DutyOut(BaseModel):
    pharmacist_id: str
    on_duty: bool
    since: datetime | None = Field(default=None, description="本次签到时间；未在岗时为空")


class OnDutyOut(BaseModel):
    pharmacist_id: str
    name: str
    since: datetime


async def _duty_of(session: SessionDep, pharmacist_id: str) -> DutyOut:
    period = await duty.open_period(session, pharmacist_id)
    return DutyOut(pharmacist_id=pharmacist_id, on_duty=period is not None, since=period.started_at if period else None)


@router.get("/me/duty", response_model=DutyOut, responses=problem_responses(401, 403), summary="我的在岗状态")
async def my_duty(actor: PharmacistDep, session: SessionDep) -> DutyOut:
    return await _duty_of(session, actor.ref or "")


@router.post("/me/duty", response_model=DutyOut, responses=problem_responses(401, 403, 422), summary="药师签到 / 签退")
async def set_my_duty(body: DutyIn, request: Request, actor: PharmacistDep, session: SessionDep) -> DutyOut:
    """Signing in while on duty, or out while off, changes nothing (and is not audited again)."""
    pharmacist_id = actor.ref or ""
    if body.on_duty:
        changed = await duty.sign_in(session, pharmacist_id)
    else:
        changed = await duty.sign_out(session, pharmacist_id, datetime.now(UTC))
    if changed:
        action = "pharmacist.duty_on" if body.on_duty else "pharmacist.duty_off"
        audit(session, actor, action, "pharmacist", pharmacist_id, request=request)
    await session.commit()
    return await _duty_of(session, pharmacist_id)


@router.get("/on-duty", response_model=list[OnDutyOut], responses=problem_responses(401, 403), summary="当前在岗药师")
async def pharmacists_on_duty(actor: ActorDep, session: SessionDep) -> list[OnDutyOut]:
    if actor.role not in (Role.PHARMACIST, Role.ADMIN):
        raise Problem(403, "FORBIDDEN", "无权访问", "仅药师和管理员可以查看药师在岗情况")
    return [
        OnDutyOut(pharmacist_id=pharmacist.id, name=pharmacist.name, since=since)
        for pharmacist, since in await duty.on_duty(session)
    ]

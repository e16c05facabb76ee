"""Booking blocks (黑名单, 8.6.8): admins list and lift them; patients see their own standing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.auth import AdminDep, PatientDep
from api.deps import SessionDep, SettingsDep
from api.errors import problem_responses
from api.schemas.common import Limit, Offset, Page
from api.services.booking_blocks import enforce_no_show_rule, hospital_time, lift_block, list_blocks
from models.tables import BookingBlock

router = APIRouter(tags=["booking-blocks"])

BlockId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class BookingBlockOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[12])
    patient_id: str = Field(examples=["p-10001"])
    blocked_from: datetime = Field(description="限制开始时间（达到爽约次数之时）")
    blocked_until: datetime = Field(description="限制结束时间")
    reason: str = Field(examples=["90 天内爽约 3 次，暂停预约挂号 30 天"])
    rule: dict[str, Any] = Field(description="触发时的规则参数与计入的爽约挂号", examples=[{"no_show_limit": 3}])
    active: bool = Field(description="当前是否生效")
    lifted_at: datetime | None = None
    lifted_by: str | None = Field(default=None, description="解除限制的管理员用户 ID")
    lift_reason: str | None = None


class LiftIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=500, examples=["患者申诉：就诊当日网络故障，经核实予以解除"])


class MyBookingBlockOut(BaseModel):
    blocked: bool
    blocked_until: datetime | None = Field(default=None, description="限制结束时间；未受限制时为空")
    reason: str | None = Field(default=None, examples=["90 天内爽约 3 次，暂停预约挂号 30 天"])
    message: str = Field(examples=["您可以正常预约挂号。"])


def _out(block: BookingBlock, now: datetime) -> BookingBlockOut:
    active = block.lifted_at is None and block.blocked_until > now
    return BookingBlockOut.model_validate({**block.model_dump(), "active": active})


@router.get(
    "/admin/booking-blocks",
    response_model=Page[BookingBlockOut],
    responses=problem_responses(401, 403, 422),
    summary="预约限制（黑名单）列表",
)
async def admin_list(
    actor: AdminDep,
    session: SessionDep,
    patient_id: str | None = Query(default=None, max_length=40, description="只看该患者"),
    active: bool | None = Query(default=None, description="true 只看生效中的，false 只看已解除或已到期的"),
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[BookingBlockOut]:
    """Newest first."""
    now = datetime.now(UTC)
    items, total = await list_blocks(session, patient_id=patient_id, active=active, limit=limit, offset=offset, now=now)
    return Page[BookingBlockOut](items=[_out(item, now) for item in items], total=total, limit=limit, offset=offset)


@router.post(
    "/admin/booking-blocks/{block_id}/lift",
    response_model=BookingBlockOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="解除预约限制",
)
async def admin_lift(
    block_id: BlockId, body: LiftIn, request: Request, actor: AdminDep, session: SessionDep
) -> BookingBlockOut:
    """Lift a block in force after an appeal (申诉). The reason is recorded and audited; the no-shows before the
    lift no longer count toward a new block. 409 `BOOKING_BLOCK_NOT_ACTIVE` if it was lifted already or has ended."""
    block = await lift_block(session, actor, block_id, body.reason, request)
    return _out(block, datetime.now(UTC))


@router.get(
    "/me/booking-block",
    response_model=MyBookingBlockOut,
    responses=problem_responses(401, 403),
    summary="我的预约限制",
)
async def my_block(actor: PatientDep, session: SessionDep, settings: SettingsDep) -> MyBookingBlockOut:
    """Whether the patient may book now; if not, until when and why (the same rule booking applies)."""
    assert actor.ref is not None
    block = await enforce_no_show_rule(session, settings, actor.ref)
    if block is None:
        return MyBookingBlockOut(blocked=False, message="您可以正常预约挂号。")
    return MyBookingBlockOut(
        blocked=True,
        blocked_until=block.blocked_until,
        reason=block.reason,
        message=f"{block.reason}，{hospital_time(block.blocked_until)}（北京时间）后可再次预约。如有异议，可联系客服申诉。",
    )

"""Bills (订单): patients list and read their own; finance and admins read all."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import select
from sqlmodel import col

from api.auth import ActorDep
from api.deps import SessionDep
from api.errors import problem_responses
from api.services.access import visible_bill
from api.services.audit import audit_read
from models.common import Role
from models.tables import Bill

router = APIRouter(prefix="/bills", tags=["bills"])


class BillOut(BaseModel):
    bill_id: str
    kind: str
    ref_id: str
    amount_fen: int
    refunded_fen: int
    description: str
    status: str
    channel: str
    pay_url: str | None
    pay_deadline: datetime | None
    transaction_id: str | None
    paid_at: datetime | None
    created_at: datetime


def _out(row: Bill) -> BillOut:
    return BillOut(
        bill_id=row.id,
        kind=row.kind,
        ref_id=row.ref_id,
        amount_fen=row.amount_fen,
        refunded_fen=row.refunded_fen,
        description=row.description,
        status=row.status,
        channel=row.channel,
        pay_url=row.pay_url,
        pay_deadline=row.pay_deadline,
        transaction_id=row.transaction_id,
        paid_at=row.paid_at,
        created_at=row.created_at,
    )


@router.get("", response_model=list[BillOut], responses=problem_responses(401), summary="订单列表")
async def list_bills(
    actor: ActorDep,
    session: SessionDep,
    limit: int = Query(default=50, ge=1, le=200),
    offset: int = Query(default=0, ge=0, le=1_000_000),
) -> list[BillOut]:
    query = select(Bill).order_by(col(Bill.created_at).desc()).limit(limit).offset(offset)
    if actor.role is Role.PATIENT:
        query = query.where(col(Bill.patient_id) == actor.ref)
    elif actor.role not in (Role.FINANCE, Role.ADMIN):
        return []
    return [_out(row) for row in (await session.execute(query)).scalars()]


@router.get("/{bill_id}", response_model=BillOut, responses=problem_responses(401, 404), summary="订单详情")
async def get_bill(bill_id: str, request: Request, actor: ActorDep, session: SessionDep) -> BillOut:
    bill = await visible_bill(session, actor, bill_id)
    await audit_read(session, actor, "bill", bill_id, bill.patient_id, request)
    return _out(bill)

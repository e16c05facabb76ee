"""Bills (订单): patients list and read their own; finance and admins read all."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import col

from api.auth import ActorDep
from api.deps import SessionDep
from api.errors import problem_responses
from api.schemas.money import InsurancePartOut, InvoiceOut
from api.services.access import visible_bill
from api.services.audit import audit_read
from models.common import Role
from models.tables import Bill, InsuranceCredential, InsuranceSettlement

router = APIRouter(prefix="/bills", tags=["bills"])


class BillOut(BaseModel):
    bill_id: str
    kind: str
    ref_id: str
    total_fen: int = Field(description="订单总额（分）= 个人支付 + 医保支付")
    amount_fen: int = Field(description="经支付渠道支付的金额（分）：自费订单为全额，医保订单为个人自付部分")
    refunded_fen: int = Field(description="已经支付渠道退回（分）")
    insurance_fen: int = Field(description="医保支付（分）：统筹基金与个人账户")
    insurance_refunded_fen: int = Field(description="已经医保平台退回（分）")
    description: str
    status: str
    channel: str
    campus: str | None = Field(description="收款商户所属院区")
    pay_url: str | None
    pay_deadline: datetime | None
    transaction_id: str | None
    paid_at: datetime | None
    created_at: datetime
    invoice: InvoiceOut | None = Field(default=None, description="电子票据（支付后开具，全额退款后冲红）")
    insurance: InsurancePartOut | None = Field(default=None, description="医保结算明细（仅订单详情）")


def _out(
    row: Bill, settlement: InsuranceSettlement | None = None, credential: InsuranceCredential | None = None
) -> BillOut:
    invoice = None
    if row.invoice_code and row.invoice_no:
        invoice = InvoiceOut(
            invoice_code=row.invoice_code,
            invoice_no=row.invoice_no,
            check_code=row.invoice_check_code,
            url=row.invoice_url,
            issued_at=row.invoice_issued_at,
            red_invoice_code=row.red_invoice_code,
            red_invoice_no=row.red_invoice_no,
        )
    insurance = None
    if settlement is not None:
        insurance = InsurancePartOut(
            setl_id=settlement.setl_id,
            status=settlement.status,
            mobile=settlement.mobile,
            fund_fen=settlement.fund_fen,
            account_fen=settlement.account_fen,
            cash_fen=settlement.cash_fen,
        )
    elif credential is not None and credential.mobile and credential.authorized_at is None and row.status == "open":
        # 医保移动支付 before the patient authorized it: nothing is settled yet, `pay_url` leads to the authorization.
        insurance = InsurancePartOut(
            setl_id=None, status="awaiting_authorization", mobile=True, fund_fen=0, account_fen=0, cash_fen=0
        )
    return BillOut(
        bill_id=row.id,
        kind=row.kind,
        ref_id=row.ref_id,
        total_fen=row.amount_fen + row.insurance_fen,
        amount_fen=row.amount_fen,
        refunded_fen=row.refunded_fen,
        insurance_fen=row.insurance_fen,
        insurance_refunded_fen=row.insurance_refunded_fen,
        description=row.description,
        status=row.status,
        channel=row.channel,
        campus=row.campus,
        pay_url=row.pay_url,
        pay_deadline=row.pay_deadline,
        transaction_id=row.transaction_id,
        paid_at=row.paid_at,
        created_at=row.created_at,
        invoice=invoice,
        insurance=insurance,
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
    settlement = await session.get(InsuranceSettlement, bill_id)
    credential = await session.get(InsuranceCredential, bill_id) if settlement is None else None
    await audit_read(session, actor, "bill", bill_id, bill.patient_id, request)
    return _out(bill, settlement, credential)

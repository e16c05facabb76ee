"""Refunds the hospital starts (8.4.2) and the 医保 credential a patient pays with.

The checks here give a clear answer early; the claim in PostgreSQL (activities/billing.py) stays the one that decides,
so a refund is never issued twice nor above what was paid however requests race.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from activities.insurance_pay import CREDENTIAL_COLUMN
from activities.refund_requests import dispatch_status
from api.auth import Actor
from api.errors import Problem
from api.schemas.money import AuthorizedRefundIn, InsuranceIn, NegotiationOut, RefundOut, RefundStarted, SpecialRefundIn
from api.services.audit import audit
from core.crypto.sm import FieldCipher
from models.billing import BillKind, BillStatus, RefundInput, RefundKind
from models.insurance import CertType
from models.tables import Bill, InsuranceCredential, Refund, RefundNegotiation, Visit
from models.visit import VisitStage
from workflows.refund import RefundWorkflow, refund_workflow_id

# A registration's own flow refunds while it runs (cancel, abort, leave); an administrator steps in after it ended.
_VISIT_ENDED = {VisitStage.FINISHED, VisitStage.CANCELLED, VisitStage.ABORTED, VisitStage.NO_SHOW}


async def present_insurance(
    sessions: async_sessionmaker[AsyncSession],
    cipher: FieldCipher,
    patient_id: str,
    bill_id: str,
    insurance: InsuranceIn | None,
) -> None:
    """Keep how the patient pays `bill_id` with 医保, before the bill opens: the 医保电子凭证 token (SM4 at rest), or
    for 医保移动支付 no credential yet (the platform reports the patient's authorization later)."""
    if insurance is None:
        return
    values: dict[str, Any] = {
        "cert_type": (CertType.ID_CARD if insurance.mobile else CertType.EC_TOKEN).value,
        "cert_no_enc": cipher.encrypt(CREDENTIAL_COLUMN, insurance.ec_token) if insurance.ec_token else None,
        "use_account": insurance.use_account,
        "mobile": insurance.mobile,
    }
    async with sessions() as session, session.begin():
        await session.execute(
            insert(InsuranceCredential)
            .values(bill_id=bill_id, patient_id=patient_id, **values)
            .on_conflict_do_update(
                index_elements=["bill_id"], set_=values, where=col(InsuranceCredential.patient_id) == patient_id
            )
        )


def refundable_fen(bill: Bill) -> int:
    """What is left to refund of a paid bill: its channel part and its 医保 part."""
    if bill.status != BillStatus.PAID.value:
        return 0
    return bill.amount_fen - bill.refunded_fen + bill.insurance_fen - bill.insurance_refunded_fen


async def start_authorized_refund(
    temporal: Client,
    task_queue: str,
    session: AsyncSession,
    actor: Actor,
    bill: Bill,
    body: AuthorizedRefundIn,
    request: Request,
) -> RefundStarted:
    """An administrator refunds a registration fee whose visit has ended: the patient could not attend, or the
    hospital changed the schedule. The reason is recorded on the refund and in the audit trail."""
    if bill.kind != BillKind.REGISTRATION.value:
        how = (
            "检查费在检查执行前由患者取消或医院取消检查时退回（检查单的取消）"
            if bill.kind == BillKind.EXAM.value
            else "处方药费请由患者申请退款（药品出库前）或办理特殊退款"
        )
        raise Problem(409, "REFUND_KIND_NOT_ALLOWED", "不能授权退款", how)
    stage = (await session.execute(select(col(Visit.stage)).where(col(Visit.id) == bill.ref_id))).scalar()
    if stage is None or VisitStage(stage) not in _VISIT_ENDED:
        raise Problem(409, "VISIT_IN_PROGRESS", "复诊流程尚未结束", "复诊进行中，取消、中止或停诊的退款由复诊流程办理")
    started = _Start(temporal, task_queue, session, actor, bill, request)
    return await started(RefundKind.AUTHORIZED, body.amount_fen, body.reason, body.reason_code, "refund.authorize")


async def start_special_refund(
    temporal: Client,
    task_queue: str,
    session: AsyncSession,
    actor: Actor,
    bill: Bill,
    body: SpecialRefundIn,
    request: Request,
) -> RefundStarted:
    """After the medicine left the pharmacy: open a special refund whose negotiation the hospital then records."""
    if bill.kind != BillKind.PRESCRIPTION.value:
        raise Problem(409, "REFUND_KIND_NOT_ALLOWED", "不能办理特殊退款", "特殊退款仅适用于已出库的处方药费")
    if not (await dispatch_status(session, bill.ref_id)).left:
        raise Problem(409, "RX_NOT_DISPATCHED", "药品尚未出库", "药品出库前的退款由患者在处方中申请，经医院审核后办理")
    started = _Start(temporal, task_queue, session, actor, bill, request)
    return await started(RefundKind.SPECIAL, body.amount_fen, body.reason, "after_dispatch", "refund.special")


def special_refund_workflow_id(refund_id: str) -> str:
    """The flow of a refund this module started (`{bill}-a1`, `{bill}-s1`: the sequence is the id's tail)."""
    bill_id, _, sequence = refund_id.rpartition("-")
    return refund_workflow_id(bill_id, sequence)


async def refund_out(session: AsyncSession, refund: Refund) -> RefundOut:
    rows = await session.execute(
        select(RefundNegotiation)
        .where(col(RefundNegotiation.refund_id) == refund.id)
        .order_by(col(RefundNegotiation.id))
    )
    return RefundOut(
        refund_id=refund.id,
        bill_id=refund.bill_id,
        kind=refund.kind,
        status=refund.status,
        channel_fen=refund.amount_fen,
        insurance_fen=refund.insurance_fen,
        reason=refund.reason,
        reason_code=refund.reason_code,
        requested_by=refund.requested_by,
        authorized_by=refund.authorized_by,
        final=refund.final,
        failure=refund.failure,
        created_at=refund.created_at,
        finished_at=refund.finished_at,
        negotiation=[
            NegotiationOut(
                party=row.party, agreed=row.agreed, amount_fen=row.amount_fen, note=row.note,
                recorded_by=row.recorded_by, recorded_at=row.recorded_at,
            )
            for row in rows.scalars()
        ],
    )  # fmt: skip


def _within_refundable(bill: Bill, wanted: int | None) -> int:
    left = refundable_fen(bill)
    amount = left if wanted is None else wanted
    if left <= 0 or amount > left:
        raise Problem(409, "REFUND_EXCEEDS_PAID", "退款金额超过可退金额", f"该订单剩余可退 {left / 100:.2f} 元")
    return amount


async def _next_id(session: AsyncSession, bill_id: str, prefix: str) -> str:
    """The next refund id of this kind for the bill. Two requests racing get the same id, so they start one flow."""
    count = (
        await session.execute(
            select(func.count()).where(col(Refund.bill_id) == bill_id, col(Refund.id).like(f"{bill_id}-{prefix}%"))
        )
    ).scalar_one()
    return f"{bill_id}-{prefix}{count + 1}"


@dataclass
class _Start:
    """Starting a refund flow the hospital asked for, with its audit row; ids `{bill}-a{n}` (authorized) and
    `{bill}-s{n}` (special)."""

    temporal: Client
    task_queue: str
    session: AsyncSession
    actor: Actor
    bill: Bill
    request: Request

    async def __call__(
        self, kind: RefundKind, wanted_fen: int | None, reason: str, reason_code: str, action: str
    ) -> RefundStarted:
        bill, actor = self.bill, self.actor
        refund = RefundInput(
            refund_id=await _next_id(self.session, bill.id, "a" if kind is RefundKind.AUTHORIZED else "s"),
            bill_id=bill.id,
            patient_id=bill.patient_id,
            channel=bill.channel,
            amount_fen=_within_refundable(bill, wanted_fen),
            reason=reason,
            requested_by=actor.user_id,
            kind=kind,
            reason_code=reason_code,
            # A special refund is authorized by whoever concludes its negotiation.
            authorized_by=actor.user_id if kind is RefundKind.AUTHORIZED else None,
        )
        await self.temporal.start_workflow(
            RefundWorkflow.run,
            refund,
            id=special_refund_workflow_id(refund.refund_id),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=self.task_queue,
        )
        detail = {
            "refund_id": refund.refund_id,
            "patient_id": refund.patient_id,
            "amount_fen": refund.amount_fen,
            "reason_code": reason_code,
        }
        audit(self.session, actor, action, "bill", bill.id, reason=reason, detail=detail, request=self.request)
        await self.session.commit()
        return RefundStarted(refund_id=refund.refund_id, bill_id=bill.id, kind=kind, amount_fen=refund.amount_fen)

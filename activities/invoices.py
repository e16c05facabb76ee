"""E-invoices (电子票据) of paid bills: issued after payment, reversed in red after a full refund.

Issuing and a full refund may happen in either order, and close together. Each side writes its fact first and then
looks for the other's: the issuer stores the receipt and then looks for a full refund that succeeded; the refund's
reversal looks for the receipt after the refund was recorded as succeeded. Whichever looks second reverses (both may:
the reversal's idempotency key is per bill, so the platform issues one red receipt).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.adapters.invoice import EInvoice
from activities.errors import refusals_are_final
from core.crypto.sm import FieldCipher
from models.billing import BillStatus, RefundStatus
from models.invoice import InvoiceItem, InvoiceOutcome, InvoiceRequest, InvoiceTask, RedLetter
from models.tables import Bill, InsuranceSettlement, Patient, Refund


class InvoiceActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], cipher: FieldCipher, invoice: EInvoice) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._invoice = invoice

    @activity.defn
    async def issue_invoice(self, task: InvoiceTask) -> InvoiceOutcome:
        """Issue the paid bill's receipt and store its number on the bill; reverse it at once if the bill was refunded
        in full meanwhile."""
        async with self._sessions() as session:
            bill = await session.get(Bill, task.bill_id)
            if bill is None or bill.status != BillStatus.PAID.value:
                return InvoiceOutcome(**task.model_dump())
            request = await self._request(session, bill)
        if bill.invoice_no is None:
            issued = await refusals_are_final(
                self._invoice.issue(idempotency_key=f"{activity.info().workflow_id}:issue", request=request)
            )
            async with self._sessions() as session, session.begin():
                await session.execute(
                    update(Bill)
                    .where(col(Bill.id) == task.bill_id)
                    .values(
                        invoice_code=issued.invoice_code,
                        invoice_no=issued.invoice_no,
                        invoice_check_code=issued.check_code,
                        invoice_url=issued.url,
                        invoice_issued_at=issued.issued_at,
                    )
                )
        outcome = await self.reverse_invoice(task) if await self._refunded_in_full(task.bill_id) else None
        async with self._sessions() as session:
            bill = await session.get(Bill, task.bill_id)
        assert bill is not None
        return InvoiceOutcome(
            **task.model_dump(),
            invoice_no=bill.invoice_no,
            red_invoice_no=outcome.red_invoice_no if outcome else None,
            total_fen=request.total_fen,
        )

    @activity.defn
    async def reverse_invoice(self, task: InvoiceTask) -> InvoiceOutcome:
        """Reverse the bill's receipt in red (冲红); nothing to do while none is issued (the issuer reverses it)."""
        async with self._sessions() as session:
            bill = await session.get(Bill, task.bill_id)
        if bill is None or bill.invoice_code is None or bill.invoice_no is None:
            return InvoiceOutcome(**task.model_dump())
        red: RedLetter = await refusals_are_final(
            self._invoice.reverse(
                idempotency_key=f"invoice-{task.bill_id}:red",
                invoice_code=bill.invoice_code,
                invoice_no=bill.invoice_no,
                reason=task.reason or "全额退款",
            )
        )
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Bill)
                .where(col(Bill.id) == task.bill_id)
                .values(red_invoice_code=red.invoice_code, red_invoice_no=red.invoice_no)
            )
        return InvoiceOutcome(
            **task.model_dump(), invoice_no=bill.invoice_no, red_invoice_no=red.invoice_no, total_fen=red.total_fen
        )

    async def _request(self, session: AsyncSession, bill: Bill) -> InvoiceRequest:
        name_enc = (
            await session.execute(select(col(Patient.name_enc)).where(col(Patient.id) == bill.patient_id))
        ).scalar()
        settlement = await session.get(InsuranceSettlement, bill.id)
        covered = settlement is not None and settlement.status in ("settled", "cancelled")
        total = bill.amount_fen + bill.insurance_fen
        return InvoiceRequest(
            bill_id=bill.id,
            payer_name=self._cipher.decrypt("name", name_enc) or "患者",
            total_fen=total,
            items=[InvoiceItem(name=bill.description or "医疗服务", amount_fen=total)],
            fund_fen=settlement.fund_fen if covered and settlement else 0,
            account_fen=settlement.account_fen if covered and settlement else 0,
            self_pay_fen=bill.amount_fen,
            paid_at=bill.paid_at or datetime.now(UTC),
        )

    async def _refunded_in_full(self, bill_id: str) -> bool:
        async with self._sessions() as session:
            found = (
                await session.execute(
                    select(col(Refund.id)).where(
                        col(Refund.bill_id) == bill_id,
                        col(Refund.final).is_(True),
                        col(Refund.status) == RefundStatus.SUCCEEDED.value,
                    )
                )
            ).first()
        return found is not None

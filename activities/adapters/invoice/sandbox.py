"""Sandbox e-invoice platform for development: receipts numbered from a digest of the bill, kept in the sandbox call
record (`sandbox_calls`) like every sandbox peer, so retries are answered from the record and a restarted worker
finds the receipts it issued. The payer's name is never recorded."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.errors import AdapterRefusal
from activities.adapters.sandbox import CALLS, recorder_for, utcnow
from core.crypto.sm import sm3_hex
from core.settings import Settings
from models.invoice import Invoice, InvoiceRequest, InvoiceStatus, RedLetter

SYSTEM = "invoice"
_CODE = "11060126"  # 票据代码: region (110000), kind (门诊收费票据) and year, fixed in the sandbox
_RED_CODE = "11060226"
# Where a receipt is checked; `.invalid` (RFC 2606) because the sandbox has no public checking site.
_CHECK_SITE = "https://einvoice.sandbox.invalid/check"


def _number(*parts: str) -> str:
    return f"{int(sm3_hex(':'.join(parts).encode())[:12], 16) % 10**10:010d}"


class SandboxInvoice:
    name = "sandbox"

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._recorder = recorder_for(sessions, settings)

    async def issue(self, *, idempotency_key: str, request: InvoiceRequest) -> Invoice:
        record = {"bill_id": request.bill_id, "total_fen": request.total_fen}

        async def perform(session: AsyncSession) -> dict[str, Any]:
            # One bill, one receipt: a second key for the same bill finds the first receipt. The lock makes two keys
            # arriving together take turns.
            await session.execute(select(func.pg_advisory_xact_lock(int(sm3_hex(request.bill_id.encode())[:15], 16))))
            issued = await self._find(session, "issue", "bill_id", request.bill_id)
            if issued is not None:
                if issued["total_fen"] != request.total_fen:
                    raise AdapterRefusal("INVOICE_AMOUNT_CONFLICT", "该业务单号已开具金额不同的票据")
                return issued
            number = _number("issue", request.bill_id)
            return {
                **record,
                "invoice_code": _CODE,
                "invoice_no": number,
                "check_code": sm3_hex(f"check:{number}".encode())[:6],
                "issued_at": utcnow().isoformat(),
            }

        answer = await self._recorder.once(SYSTEM, "issue", idempotency_key, record, perform)
        return await self._invoice(answer)

    async def reverse(self, *, idempotency_key: str, invoice_code: str, invoice_no: str, reason: str) -> RedLetter:
        record = {"invoice_code": invoice_code, "invoice_no": invoice_no, "reason": reason}

        async def perform(session: AsyncSession) -> dict[str, Any]:
            issued = await self._issued(session, invoice_code, invoice_no)
            reversed_ = await self._find(session, "reverse", "invoice_no", invoice_no)
            if reversed_ is not None:
                return reversed_
            return {
                "invoice_code": invoice_code,
                "invoice_no": invoice_no,
                "red_code": _RED_CODE,
                "red_no": _number("reverse", invoice_no),
                "total_fen": issued["total_fen"],
                "issued_at": utcnow().isoformat(),
            }

        answer = await self._recorder.once(SYSTEM, "reverse", idempotency_key, record, perform)
        return RedLetter(
            original_code=answer["invoice_code"],
            original_no=answer["invoice_no"],
            invoice_code=answer["red_code"],
            invoice_no=answer["red_no"],
            total_fen=answer["total_fen"],
            issued_at=datetime.fromisoformat(answer["issued_at"]),
        )

    async def query(self, *, invoice_code: str, invoice_no: str) -> Invoice:
        await self._recorder.gate(SYSTEM, "query", invoice_no)
        async with self._sessions() as session:
            issued = await self._issued(session, invoice_code, invoice_no)
        return await self._invoice(issued)

    async def _issued(self, session: AsyncSession, invoice_code: str, invoice_no: str) -> dict[str, Any]:
        issued = await self._find(session, "issue", "invoice_no", invoice_no)
        if issued is None or issued["invoice_code"] != invoice_code:
            raise AdapterRefusal("INVOICE_NOT_FOUND", "票据不存在")
        return issued

    async def _invoice(self, answer: dict[str, Any]) -> Invoice:
        async with self._sessions() as session:
            reversed_ = await self._find(session, "reverse", "invoice_no", answer["invoice_no"])
        return Invoice(
            bill_id=answer["bill_id"],
            invoice_code=answer["invoice_code"],
            invoice_no=answer["invoice_no"],
            check_code=answer["check_code"],
            total_fen=answer["total_fen"],
            issued_at=datetime.fromisoformat(answer["issued_at"]),
            url=f"{_CHECK_SITE}?code={answer['invoice_code']}&no={answer['invoice_no']}&check={answer['check_code']}",
            status=InvoiceStatus.REVERSED if reversed_ is not None else InvoiceStatus.ISSUED,
        )

    @staticmethod
    async def _find(session: AsyncSession, operation: str, field: str, value: str) -> dict[str, Any] | None:
        """The first finished response of `operation` that holds `field` == `value` (calls in progress have none)."""
        rows = await session.scalars(
            select(CALLS.c.response)
            .where(CALLS.c.system == SYSTEM, CALLS.c.operation == operation, CALLS.c.response[field].astext == value)
            .order_by(CALLS.c.id)
            .limit(1)
        )
        found = rows.first()
        return dict(found) if found else None

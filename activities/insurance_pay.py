"""医保 at payment (8.4.1.5): a bill settled through the 医保 platform before the patient pays the rest.

The patient presents a 医保电子凭证 token for a bill (stored SM4-encrypted with it, `insurance_credentials`). The
bill's flow then asks, in order: 1101 (who the token belongs to and their insurance), 2201 (the outpatient visit),
2204 (the fee lines) and 2207 (the settlement, which splits the bill into pooled fund, personal account and cash to
the fen). Only the cash part goes to the payment channel. Every call carries `{workflow_id}:{step}` as its
idempotency key and the workflow's time of asking, so a retried activity resends the same message.

A 2207 whose answer never came (`SettlementUnknown`) is recorded as `unknown` and reported to the flow, which
reverses it (2601) and settles again under the next attempt's key: a settlement is never blindly resent. A bill that
closes unpaid, and a refund of everything left, cancel the settlement (2208).

医保移动支付 (the mobile path, `models.billing.InsurancePath`): the patient asked to pay with 医保 on their phone, and
the platform reported their payment authorization (payAuthNo, SM4 at rest) for the bill. The patient's own verified
ID card is the credential of 1101 and 2201; the fee goes up as a mobile order (6201) and 6202 settles it with the
authorization. A 6202 whose answer never came is not reversed but asked about (6301, `check_mobile_settlement`):
settled, it stands; never settled, 6202 goes again under the next attempt's key. Giving a mobile settlement back is
6203 (whole: refdType ALL), withdrawing an order never paid 6401.

A partial refund beyond the self-pay part gives the settlement back (2208 / 6203) and then settles what remains of
the bill: the old fee batch is withdrawn (2205; a refunded mobile order needs nothing more) and the remaining amount
goes up as a new batch (2204 / 6201) under the flow's own keys before it is settled (2207 / 6202).

`RecordedSettlements` is the platform's book of these settlements for the daily 3201/3202 check.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.adapters.errors import AdapterError, AdapterRefusal
from activities.adapters.insurance import MedicalInsurance, SettlementUnknown
from activities.adapters.insurance.split import fen_to_yuan
from activities.errors import business_error, refusals_are_final
from activities.insurance_book import BookedSettlement
from activities.visits import load_identity
from core.crypto.sm import FieldCipher, sm3_hex
from models.billing import (
    BillKind,
    InsurancePath,
    InsuranceRelease,
    InsuranceSettleRequest,
    InsuranceShare,
    MobileSettlementCheck,
    MobileSettlementState,
)
from models.common import HOSPITAL_TZ
from models.insurance import (
    CertType,
    DailyCheckLine,
    FeeLine,
    InsuranceCredential,
    InsuranceVisit,
    InsuredRef,
    MobileOrder,
    MobileOrderQuery,
    MobileOrderRequest,
    MobileOrderState,
    MobilePayRequest,
    MobileRefundRequest,
    MobileRefundStatus,
    PaymentSplit,
    SettlementScope,
    SettleRequest,
    VisitRequest,
)
from models.reconciliation import InsuranceGroup
from models.tables import Department, Doctor, InsuranceSettlement, Prescription, Visit
from models.tables import InsuranceCredential as CredentialRow

# 科别 of every visit: 中医科. The fee items are this hospital's catalogue codes and the national codes they are
# mapped to (对照); a real deployment takes both from its own catalogue, the sandbox platform accepts any.
_CATY = "A50"
_FEE_ITEMS = {
    BillKind.REGISTRATION: ("001102000010000", "QH-REG-ONLINE", None),
    BillKind.PRESCRIPTION: ("T000000000001", "QH-TCM-PIECES", "1"),  # tcmdrug_used_way 1: 复方
}
_OUTPATIENT = "11"
CREDENTIAL_COLUMN = "insurance_cert_no"
_T = TypeVar("_T")
AUTHORIZATION_COLUMN = "insurance_pay_auth_no"
# 6201/6202 feeType: 01 挂号 (registration), 02 门诊 (everything else of an outpatient visit).
_MOBILE_FEE_TYPE = {BillKind.REGISTRATION: "01"}
_UNPAID = "0"  # ordStas 0: the order is uploaded and nothing of it settled


@dataclass(frozen=True)
class _Payer:
    """Who pays a bill with 医保, and with what (decrypted inside the activity only)."""

    cert_type: CertType
    cert_no: str
    use_account: bool
    mobile: bool = False
    pay_auth_no: str = ""
    user_name: str = ""


@dataclass(frozen=True)
class _VisitContext:
    visit_id: str
    begins_at: datetime
    doctor_code: str
    doctor_name: str
    dept_code: str
    dept_name: str
    disease_code: str


class InsurancePayActivities:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], cipher: FieldCipher, insurance: MedicalInsurance
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._insurance = insurance

    @activity.defn
    async def insurance_presented(self, bill_id: str) -> bool:
        """Whether the patient presented a 医保 credential for this bill (local: one indexed read)."""
        async with self._sessions() as session:
            return await session.get(CredentialRow, bill_id) is not None

    @activity.defn
    async def insurance_path(self, bill_id: str) -> InsurancePath | None:
        """How the patient asked to pay this bill with 医保, if they did (local: one indexed read)."""
        async with self._sessions() as session:
            credential = await session.get(CredentialRow, bill_id)
        if credential is None:
            return None
        return InsurancePath.MOBILE if credential.mobile else InsurancePath.HOSPITAL

    @activity.defn
    async def settle_bill_insurance(self, request: InsuranceSettleRequest) -> InsuranceShare:
        """Register the visit, upload the fee and settle the bill at the 医保 platform; the split to the fen.

        A bill whose settlement went back in a partial refund has the remaining amount uploaded as a new batch and
        settled; the visit stays the same."""
        key = _flow()
        async with self._sessions() as session:
            row = await session.get(InsuranceSettlement, request.bill_id)
            credential = await session.get(CredentialRow, request.bill_id)
        if row is not None and row.status == "settled":
            return _share(row)
        if credential is None:
            raise business_error("INSURANCE_CREDENTIAL_MISSING", "未提供医保电子凭证")
        payer = await self._payer(credential)
        if row is None or row.status == "released":
            row = await self._register(request, key, payer)
        elif row.status == "cancelled":
            row = await self._upload_again(request, key, payer, row)
        if payer.mobile:
            return await self._pay_mobile(request, key, payer, row)
        visit = _visit(row)
        settle = SettleRequest(
            visit=visit,
            cert_type=payer.cert_type,
            cert_no=payer.cert_no,
            chrg_bchno=row.chrg_bchno,
            total_fen=request.amount_fen,
            use_account=payer.use_account,
        )
        settled = await self._settling(
            request,
            self._insurance.settle(
                idempotency_key=f"{key}:2207:{request.attempt}", requested_at=request.requested_at, request=settle
            ),
        )
        if settled.split.total_fen != request.amount_fen or settled.setl_id is None:
            # Never accept a settlement of another amount: reverse it like one whose answer never came.
            await self._update(request.bill_id, status="unknown", msgid=settled.medins_setl_id, attempt=request.attempt)
            raise business_error("SETTLEMENT_UNKNOWN", "医保结算金额与订单不符，须先冲正")
        await self._update(
            request.bill_id,
            status="settled",
            attempt=request.attempt,
            msgid=settled.medins_setl_id,
            setl_id=settled.setl_id,
            **_amounts(settled.split),
            clr_optins=settled.clr_optins or visit.insured.insuplc_admdvs,
            clr_type=settled.clr_type or _OUTPATIENT,
            settled_at=settled.setl_time or datetime.now(UTC),
        )
        return InsuranceShare(setl_id=settled.setl_id, split=settled.split)

    @activity.defn
    async def check_mobile_settlement(self, request: InsuranceSettleRequest) -> MobileSettlementCheck:
        """6301: what became of the bill's mobile order after a 6202 that went unanswered (or a settlement notice,
        which only says "look"). A settlement found is recorded like one 6202 answered."""
        async with self._sessions() as session:
            row = await session.get(InsuranceSettlement, request.bill_id)
        if row is not None and row.status == "settled":
            return MobileSettlementCheck(state=MobileSettlementState.SETTLED, share=_share(row))
        if row is None or not row.mobile or row.pay_ord_id is None:
            raise business_error("MOBILE_ORDER_MISSING", "该订单没有医保移动支付订单")
        status = await refusals_are_final(self._insurance.query_mobile_order(query=await self._order_query(row)))
        if status.state is MobileOrderState.SETTLED and status.split is not None:
            if status.split.total_fen != request.amount_fen:
                raise business_error("SETTLEMENT_AMOUNT_MISMATCH", "医保结算金额与订单金额不符")
            share = await self._settled_mobile(request.bill_id, row, status.split)
            return MobileSettlementCheck(state=MobileSettlementState.SETTLED, share=share)
        if status.ord_stas == _UNPAID:
            # Nothing was settled: the next 6202 may go, under its own key.
            await self._update(request.bill_id, status="registered")
            return MobileSettlementCheck(state=MobileSettlementState.UNPAID)
        if status.state in (MobileOrderState.PROCESSING, MobileOrderState.UNKNOWN):
            return MobileSettlementCheck(state=MobileSettlementState.PROCESSING)
        return MobileSettlementCheck(state=MobileSettlementState.CLOSED)

    @activity.defn
    async def reverse_unknown_settlement(self, request: InsuranceSettleRequest) -> None:
        """2601: reverse the settling message whose answer never came, so the bill can be settled again."""
        async with self._sessions() as session:
            row = await session.get(InsuranceSettlement, request.bill_id)
        # A mobile order is asked about (6301), never reversed.
        if row is None or row.status != "unknown" or row.msgid is None or row.mobile:
            return
        await refusals_are_final(
            self._insurance.reverse(
                idempotency_key=f"{_flow()}:2601:{row.attempt}",
                requested_at=request.requested_at,
                insured=_visit(row).insured,
                original_infno="2207",
                original_msgid=row.msgid,
            )
        )
        await self._update(request.bill_id, status="registered")

    @activity.defn
    async def release_bill_insurance(self, release: InsuranceRelease) -> PaymentSplit | None:
        """Give back what the platform holds for the bill: cancel its settlement (2208) and, for a bill never paid,
        withdraw its fees and visit (2205, 2202). The cancelled split, or None when nothing was settled."""
        key = _flow()
        async with self._sessions() as session:
            row = await session.get(InsuranceSettlement, release.bill_id)
        if row is None:
            return None
        if row.mobile:
            return await self._release_mobile(release, key, row)
        cancelled: PaymentSplit | None = _share(row).split if row.status == "cancelled" else None
        if row.status == "settled" and row.setl_id is not None:
            answer = await refusals_are_final(
                self._insurance.cancel_settlement(
                    idempotency_key=f"{key}:2208", requested_at=release.requested_at, visit=_visit(row),
                    setl_id=row.setl_id,
                )
            )  # fmt: skip
            cancelled = answer.split
            await self._update(
                release.bill_id, status="cancelled", cancelled_at=datetime.now(UTC), cancel_setl_id=answer.setl_id
            )
        if release.cancel_visit and row.status != "released":
            visit = _visit(row)
            await refusals_are_final(
                self._insurance.cancel_fees(
                    idempotency_key=f"{key}:2205", requested_at=release.requested_at, visit=visit,
                    chrg_bchno=row.chrg_bchno,
                )
            )  # fmt: skip
            await refusals_are_final(
                self._insurance.cancel_visit(
                    idempotency_key=f"{key}:2202", requested_at=release.requested_at, visit=visit
                )
            )
            if row.status != "settled" and cancelled is None:
                await self._update(release.bill_id, status="released")
        return cancelled

    # --- steps ---

    async def _release_mobile(
        self, release: InsuranceRelease, key: str, row: InsuranceSettlement
    ) -> PaymentSplit | None:
        """The mobile path's release: 6203 gives a settled order back whole, 6401 withdraws one never paid; an order
        whose 6202 went unanswered is asked about first (6301), and one still being settled is asked again later."""
        cancelled: PaymentSplit | None = _share(row).split if row.status == "cancelled" else None
        paid: PaymentSplit | None = _share(row).split if row.status == "settled" else None
        open_order = row.status in ("registered", "unknown") and row.pay_ord_id is not None
        if open_order:
            status = await refusals_are_final(self._insurance.query_mobile_order(query=await self._order_query(row)))
            if status.state is MobileOrderState.SETTLED and status.split is not None:
                paid = status.split
            elif status.ord_stas == _UNPAID:
                await refusals_are_final(
                    self._insurance.cancel_mobile_order(
                        idempotency_key=f"{key}:6401:{row.pay_ord_id}",
                        requested_at=release.requested_at,
                        query=await self._order_query(row),
                    )
                )
            elif status.state in (MobileOrderState.PROCESSING, MobileOrderState.UNKNOWN):
                raise AdapterError(f"mobile order {row.pay_ord_id} is still being settled (ordStas {status.ord_stas})")
        if paid is not None:
            # Keyed by the order too: a re-settling refund may give back two orders of one bill, each once.
            answer = await refusals_are_final(
                self._insurance.mobile_refund(
                    idempotency_key=f"{key}:6203:{row.pay_ord_id}",
                    requested_at=release.requested_at,
                    request=MobileRefundRequest(
                        order=_order(row),
                        refund_type=SettlementScope.ALL,
                        split=paid,
                        pay_auth_no=await self._pay_auth_no(release.bill_id),
                    ),
                )
            )
            if answer.status is MobileRefundStatus.UNKNOWN:
                # The retried activity asks again under the same key (the same appRefdSn): never a second refund.
                raise AdapterError(f"6203 of {row.pay_ord_id}: the platform cannot tell the outcome yet")
            if answer.status is not MobileRefundStatus.SUCCEEDED:
                raise business_error("INSURANCE_REFUND_FAILED", "医保退费未成功")
            cancelled = paid
            await self._update(
                release.bill_id,
                status="cancelled",
                cancelled_at=datetime.now(UTC),
                cancel_setl_id=answer.app_refd_sn,
                **_amounts(paid),
            )
        if release.cancel_visit and row.status != "released":
            await refusals_are_final(
                self._insurance.cancel_visit(
                    idempotency_key=f"{key}:2202", requested_at=release.requested_at, visit=_visit(row)
                )
            )
            if paid is None and row.status != "cancelled":
                await self._update(release.bill_id, status="released")
        return cancelled

    async def _payer(self, credential: CredentialRow) -> _Payer:
        if not credential.mobile:
            cert_no = self._cipher.decrypt(CREDENTIAL_COLUMN, credential.cert_no_enc) or ""
            return _Payer(CertType(credential.cert_type), cert_no, credential.use_account)
        pay_auth_no = self._cipher.decrypt(AUTHORIZATION_COLUMN, credential.pay_auth_no_enc)
        if not pay_auth_no:
            raise business_error("INSURANCE_NOT_AUTHORIZED", "患者尚未在医保平台授权本单的医保移动支付")
        async with self._sessions() as session:
            identity = await load_identity(session, self._cipher, credential.patient_id)
        return _Payer(
            CertType.ID_CARD,
            identity.id_card_no,
            credential.use_account,
            mobile=True,
            pay_auth_no=pay_auth_no,
            user_name=identity.name,
        )

    async def _pay_auth_no(self, bill_id: str) -> str:
        async with self._sessions() as session:
            credential = await session.get(CredentialRow, bill_id)
        pay_auth_no = self._cipher.decrypt(AUTHORIZATION_COLUMN, credential.pay_auth_no_enc) if credential else None
        if not pay_auth_no:
            raise business_error("INSURANCE_NOT_AUTHORIZED", "没有患者的医保移动支付授权")
        return pay_auth_no

    async def _order_query(self, row: InsuranceSettlement) -> MobileOrderQuery:
        async with self._sessions() as session:
            identity = await load_identity(session, self._cipher, row.patient_id)
        return MobileOrderQuery(order=_order(row), user_name=identity.name, id_no=identity.id_card_no)

    async def _pay_mobile(
        self, request: InsuranceSettleRequest, key: str, payer: _Payer, row: InsuranceSettlement
    ) -> InsuranceShare:
        """6202 on the bill's mobile order. An unanswered one is recorded `unknown` for 6301, never resent."""
        pay = MobilePayRequest(
            order=_order(row),
            visit=_visit(row),
            pay_auth_no=payer.pay_auth_no,
            chrg_bchno=row.chrg_bchno,
            fee_type=_MOBILE_FEE_TYPE.get(request.kind, "02"),
            use_account=payer.use_account,
        )
        paid = await self._settling(
            request,
            self._insurance.mobile_pay(
                idempotency_key=f"{key}:6202:{request.attempt}", requested_at=request.requested_at, request=pay
            ),
        )
        if paid.state is not MobileOrderState.SETTLED or paid.split.total_fen != request.amount_fen:
            # Not a settlement of this bill as asked: ask the platform what became of the order, as if unanswered.
            await self._update(request.bill_id, status="unknown", attempt=request.attempt)
            raise business_error("SETTLEMENT_UNKNOWN", "医保移动支付结果与订单不符，须查询订单")
        return await self._settled_mobile(request.bill_id, row, paid.split)

    async def _settling(self, request: InsuranceSettleRequest, settling: Awaitable[_T]) -> _T:
        """A settling message (2207, 6202): an unknown outcome is recorded before the flow hears of it (the reversal
        or the query needs the message id and attempt); refusals are the flow's business."""
        try:
            return await settling
        except SettlementUnknown as unknown:
            await self._update(request.bill_id, status="unknown", msgid=unknown.msgid, attempt=request.attempt)
            raise business_error(unknown.code, unknown.message) from unknown
        except AdapterRefusal as refusal:
            raise business_error(refusal.code, refusal.message) from refusal

    async def _settled_mobile(self, bill_id: str, row: InsuranceSettlement, split: PaymentSplit) -> InsuranceShare:
        # The order id stands as the settlement's id (the platform keys a mobile settlement by it).
        setl_id = row.pay_ord_id or ""
        await self._update(
            bill_id,
            status="settled",
            setl_id=setl_id,
            clr_optins=row.insuplc_admdvs,
            clr_type=_OUTPATIENT,
            settled_at=datetime.now(UTC),
            **_amounts(split),
        )
        return InsuranceShare(setl_id=setl_id, split=split)

    async def _register(self, request: InsuranceSettleRequest, key: str, payer: _Payer) -> InsuranceSettlement:
        cert_type, cert_no = payer.cert_type, payer.cert_no
        person = await refusals_are_final(
            self._insurance.query_person(credential=InsuranceCredential(cert_type=cert_type, cert_no=cert_no))
        )
        coverage = person.coverage()
        if coverage.psn_insu_stas not in (None, "1"):
            raise business_error("INSURANCE_SUSPENDED", "医保参保状态异常（暂停或终止参保），本单不能使用医保结算")
        insured = person.ref(coverage.insutype)
        async with self._sessions() as session:
            context = await _visit_context(session, request.kind, request.ref_id)
        visit = await refusals_are_final(
            self._insurance.register_visit(
                idempotency_key=f"{key}:2201",
                requested_at=request.requested_at,
                request=VisitRequest(
                    insured=insured,
                    cert_type=cert_type,
                    cert_no=cert_no,
                    ipt_otp_no=outpatient_no(request.bill_id),
                    begntime=context.begins_at,
                    atddr_no=context.doctor_code,
                    dr_name=context.doctor_name,
                    dept_code=context.dept_code,
                    dept_name=context.dept_name,
                    caty=_CATY,
                ),
            )
        )
        chrg_bchno = f"{request.attempt:02d}{request.bill_id[-18:]}"
        uploaded = await self._upload(request, key, payer, visit, context, chrg_bchno, f"{request.bill_id[-27:]}-1")
        values = {
            "bill_id": request.bill_id,
            "patient_id": request.patient_id,
            "psn_no": insured.psn_no,
            "insutype": insured.insutype,
            "insuplc_admdvs": insured.insuplc_admdvs,
            "mdtrt_id": visit.mdtrt_id,
            "ipt_otp_no": visit.ipt_otp_no,
            "status": "registered",
            "attempt": request.attempt,
            **uploaded,
        }
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(InsuranceSettlement)
                .values(**values)
                .on_conflict_do_update(index_elements=["bill_id"], set_=values)
            )
            row = await session.get(InsuranceSettlement, request.bill_id)
        assert row is not None
        return row

    async def _upload_again(
        self, request: InsuranceSettleRequest, key: str, payer: _Payer, row: InsuranceSettlement
    ) -> InsuranceSettlement:
        """After the bill's settlement went back (a partial refund beyond the self-pay part): withdraw the old batch
        and upload what remains as a batch of this flow's own, under the same visit."""
        visit = _visit(row)
        if not row.mobile:
            # 2208 left the old items uploaded and unsettled; what remains is uploaded anew instead.
            await refusals_are_final(
                self._insurance.cancel_fees(
                    idempotency_key=f"{key}:2205:{row.chrg_bchno}", requested_at=request.requested_at, visit=visit,
                    chrg_bchno=row.chrg_bchno,
                )
            )  # fmt: skip
        async with self._sessions() as session:
            context = await _visit_context(session, request.kind, request.ref_id)
        chrg_bchno = f"R{sm3_hex(key.encode())[:11].upper()}"
        uploaded = await self._upload(request, key, payer, visit, context, chrg_bchno, f"{chrg_bchno}-1")
        # The cancelled settlement's figures leave the row: it now stands for the batch about to be settled.
        await self._update(
            request.bill_id,
            status="registered",
            attempt=request.attempt,
            msgid=None,
            setl_id=None,
            settled_at=None,
            total_fen=0,
            fund_fen=0,
            account_fen=0,
            cash_fen=0,
            **uploaded,
        )
        async with self._sessions() as session:
            fresh = await session.get(InsuranceSettlement, request.bill_id)
        assert fresh is not None
        return fresh

    async def _upload(
        self,
        request: InsuranceSettleRequest,
        key: str,
        payer: _Payer,
        visit: InsuranceVisit,
        context: _VisitContext,
        chrg_bchno: str,
        feedetl_sn: str,
    ) -> dict[str, Any]:
        """Upload the bill's fee line as batch `chrg_bchno`: 2204, or on the mobile path a mobile order (6201).
        The settlement row's values that say what was uploaded."""
        line = _fee_line(request, context, feedetl_sn)
        if not payer.mobile:
            await refusals_are_final(
                self._insurance.upload_fees(
                    idempotency_key=f"{key}:2204",
                    requested_at=request.requested_at,
                    visit=visit,
                    chrg_bchno=chrg_bchno,
                    lines=[line],
                )
            )
            return {"chrg_bchno": chrg_bchno, "mobile": False}
        # Our order number at the platform: one per flow that uploads (the bill's, or a re-settling refund's).
        med_org_ord = f"QH{sm3_hex(f'{key}:6201'.encode())[:26].upper()}"
        order = await refusals_are_final(
            self._insurance.upload_mobile_order(
                idempotency_key=f"{key}:6201",
                requested_at=request.requested_at,
                request=MobileOrderRequest(
                    visit=visit,
                    med_org_ord=med_org_ord,
                    pay_auth_no=payer.pay_auth_no,
                    user_name=payer.user_name,
                    id_no=payer.cert_no,
                    chrg_bchno=chrg_bchno,
                    fee_type=_MOBILE_FEE_TYPE.get(request.kind, "02"),
                    begntime=context.begins_at,
                    dept_code=context.dept_code,
                    dept_name=context.dept_name,
                    caty=_CATY,
                    atddr_no=context.doctor_code,
                    dr_name=context.doctor_name,
                    use_account=payer.use_account,
                    lines=[line],
                ),
            )
        )
        return {
            "chrg_bchno": chrg_bchno,
            "mobile": True,
            "med_org_ord": order.med_org_ord,
            "pay_ord_id": order.pay_ord_id,
            "pay_token": order.pay_token,
        }

    async def _update(self, bill_id: str, **values: Any) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(InsuranceSettlement)
                .where(col(InsuranceSettlement.bill_id) == bill_id)
                .values(**values, updated_at=datetime.now(UTC))
            )


class RecordedSettlements:
    """The platform's own book of 医保 settlements (`InsuranceBook`), for the daily 3201/3202 check."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def settled_on(self, bill_date: date) -> list[BookedSettlement]:
        start = datetime.combine(bill_date, time(0), HOSPITAL_TZ)
        query = select(InsuranceSettlement).where(
            col(InsuranceSettlement.settled_at) >= start,
            col(InsuranceSettlement.settled_at) < start + timedelta(days=1),
            col(InsuranceSettlement.setl_id).is_not(None),
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).scalars().all()
        return [
            BookedSettlement(
                group=InsuranceGroup(
                    insutype=row.insutype,
                    clr_type=row.clr_type or _OUTPATIENT,
                    setl_optins=row.clr_optins or row.insuplc_admdvs,
                ),
                line=DailyCheckLine(
                    setl_id=row.setl_id or "",
                    mdtrt_id=row.mdtrt_id,
                    psn_no=row.psn_no,
                    total_fen=row.total_fen,
                    fund_fen=row.fund_fen,
                    account_fen=row.account_fen,
                    cancelled=row.status == "cancelled",
                ),
            )
            for row in rows
        ]


def outpatient_no(bill_id: str) -> str:
    """The bill's outpatient number at the platform (ipt_otp_no, at most 30 characters, unique in the hospital)."""
    return f"QH{sm3_hex(bill_id.encode())[:26].upper()}"


def _flow() -> str:
    """The calling flow's id: the stem of every idempotency key (`{workflow_id}:{step}`)."""
    workflow_id = activity.info().workflow_id
    if not workflow_id:
        raise RuntimeError("医保 steps run only as workflow activities (their keys are the workflow's)")
    return workflow_id


def _visit(row: InsuranceSettlement) -> InsuranceVisit:
    insured = InsuredRef(psn_no=row.psn_no, insutype=row.insutype, insuplc_admdvs=row.insuplc_admdvs)
    return InsuranceVisit(insured=insured, mdtrt_id=row.mdtrt_id, ipt_otp_no=row.ipt_otp_no)


def settled_split(row: InsuranceSettlement) -> PaymentSplit:
    """The split a settlement row holds."""
    return PaymentSplit(
        total_fen=row.total_fen, fund_fen=row.fund_fen, account_fen=row.account_fen, cash_fen=row.cash_fen
    )


def _share(row: InsuranceSettlement) -> InsuranceShare:
    return InsuranceShare(setl_id=row.setl_id or "", split=settled_split(row))


def _amounts(split: PaymentSplit) -> dict[str, int]:
    """A split as the settlement row's columns (the hospital's part is not kept: it is 0 on every path we settle)."""
    return split.model_dump(include={"total_fen", "fund_fen", "account_fen", "cash_fen"})


def _order(row: InsuranceSettlement) -> MobileOrder:
    return MobileOrder(
        pay_ord_id=row.pay_ord_id or "", pay_token=row.pay_token or "", med_org_ord=row.med_org_ord or ""
    )


def _fee_line(request: InsuranceSettleRequest, context: _VisitContext, feedetl_sn: str) -> FeeLine:
    national, own, tcm_way = _FEE_ITEMS[request.kind]
    return FeeLine(
        feedetl_sn=feedetl_sn,
        med_list_codg=national,
        medins_list_codg=own,
        det_item_fee_sumamt_fen=request.amount_fen,
        cnt=Decimal(1),
        pric=fen_to_yuan(request.amount_fen),
        fee_ocur_time=request.requested_at,
        bilg_dept_codg=context.dept_code,
        bilg_dept_name=context.dept_name,
        bilg_dr_codg=context.doctor_code,
        bilg_dr_name=context.doctor_name,
        rxno=request.ref_id if request.kind is BillKind.PRESCRIPTION else None,
        tcmdrug_used_way=tcm_way,
        dise_codg=context.disease_code,
    )


async def _visit_context(session: AsyncSession, kind: BillKind, ref_id: str) -> _VisitContext:
    """The visit behind a bill (a prescription's through its visit), its doctor and department."""
    visit_id = ref_id
    if kind is BillKind.PRESCRIPTION:
        visit_id = (
            await session.execute(select(col(Prescription.visit_id)).where(col(Prescription.id) == ref_id))
        ).scalar() or ""
    row = (
        await session.execute(
            select(Visit, Doctor, Department)
            .join(Doctor, col(Doctor.id) == col(Visit.doctor_id))
            .join(Department, col(Department.id) == col(Doctor.department_id))
            .where(col(Visit.id) == visit_id)
        )
    ).first()
    if row is None:
        raise business_error("VISIT_NOT_FOUND", "订单所属的就诊记录不存在")
    visit, doctor, department = row
    return _VisitContext(
        visit_id=visit.id,
        begins_at=visit.starts_at,
        doctor_code=doctor.his_code,
        doctor_name=doctor.name,
        dept_code=department.id,
        dept_name=department.name,
        disease_code=visit.disease_code,
    )

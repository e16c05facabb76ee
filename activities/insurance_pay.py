"""医保 at payment (8.4.1.5): a bill settled through the 医保 platform before the patient pays the rest.

The patient presents a 医保电子凭证 token for a bill (stored SM4-encrypted with it, `insurance_credentials`). The
bill's flow then asks, in order: 1101 (who the token belongs to and their insurance), 2201 (the outpatient visit),
2204 (the fee lines) and 2207 (the settlement, which splits the bill into pooled fund, personal account and cash to
the fen). Only the cash part goes to the payment channel. Every call carries `{workflow_id}:{step}` as its
idempotency key and the workflow's time of asking, so a retried activity resends the same message.

A 2207 whose answer never came (`SettlementUnknown`) is recorded as `unknown` and reported to the flow, which
reverses it (2601) and settles again under the next attempt's key: a settlement is never blindly resent. A bill that
closes unpaid, and a refund of everything left, cancel the settlement (2208).

`RecordedSettlements` is the platform's book of these settlements for the daily 3201/3202 check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.adapters.errors import AdapterRefusal
from activities.adapters.insurance import MedicalInsurance, SettlementUnknown
from activities.adapters.insurance.split import fen_to_yuan
from activities.errors import business_error, refusals_are_final
from activities.insurance_book import BookedSettlement
from core.crypto.sm import FieldCipher, sm3_hex
from models.billing import BillKind, InsuranceRelease, InsuranceSettleRequest, InsuranceShare
from models.common import HOSPITAL_TZ
from models.insurance import (
    CertType,
    DailyCheckLine,
    FeeLine,
    InsuranceCredential,
    InsuranceVisit,
    InsuredRef,
    PaymentSplit,
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
    async def settle_bill_insurance(self, request: InsuranceSettleRequest) -> InsuranceShare:
        """Register the visit, upload the fee and settle the bill at the 医保 platform; the split to the fen."""
        key = _flow()
        async with self._sessions() as session:
            row = await session.get(InsuranceSettlement, request.bill_id)
            credential = await session.get(CredentialRow, request.bill_id)
        if row is not None and row.status == "settled":
            return _share(row)
        if credential is None:
            raise business_error("INSURANCE_CREDENTIAL_MISSING", "未提供医保电子凭证")
        cert_no = self._cipher.decrypt(CREDENTIAL_COLUMN, credential.cert_no_enc) or ""
        if row is None or row.status == "released":
            row = await self._register(request, key, CertType(credential.cert_type), cert_no)
        visit = _visit(row)
        settle = SettleRequest(
            visit=visit,
            cert_type=CertType(credential.cert_type),
            cert_no=cert_no,
            chrg_bchno=row.chrg_bchno,
            total_fen=request.amount_fen,
            use_account=credential.use_account,
        )
        try:
            settled = await self._insurance.settle(
                idempotency_key=f"{key}:2207:{request.attempt}", requested_at=request.requested_at, request=settle
            )
        except SettlementUnknown as unknown:
            # Recorded before the flow hears of it: the reversal (2601) needs the message id.
            await self._update(request.bill_id, status="unknown", msgid=unknown.msgid, attempt=request.attempt)
            raise business_error(unknown.code, unknown.message) from unknown
        except AdapterRefusal as refusal:
            raise business_error(refusal.code, refusal.message) from refusal
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
            total_fen=settled.split.total_fen,
            fund_fen=settled.split.fund_fen,
            account_fen=settled.split.account_fen,
            cash_fen=settled.split.cash_fen,
            clr_optins=settled.clr_optins or visit.insured.insuplc_admdvs,
            clr_type=settled.clr_type or _OUTPATIENT,
            settled_at=settled.setl_time or datetime.now(UTC),
        )
        return InsuranceShare(setl_id=settled.setl_id, split=settled.split)

    @activity.defn
    async def reverse_unknown_settlement(self, request: InsuranceSettleRequest) -> None:
        """2601: reverse the settling message whose answer never came, so the bill can be settled again."""
        async with self._sessions() as session:
            row = await session.get(InsuranceSettlement, request.bill_id)
        if row is None or row.status != "unknown" or row.msgid is None:
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

    async def _register(
        self, request: InsuranceSettleRequest, key: str, cert_type: CertType, cert_no: str
    ) -> InsuranceSettlement:
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
        await refusals_are_final(
            self._insurance.upload_fees(
                idempotency_key=f"{key}:2204",
                requested_at=request.requested_at,
                visit=visit,
                chrg_bchno=chrg_bchno,
                lines=[_fee_line(request, context)],
            )
        )
        values = {
            "bill_id": request.bill_id,
            "patient_id": request.patient_id,
            "psn_no": insured.psn_no,
            "insutype": insured.insutype,
            "insuplc_admdvs": insured.insuplc_admdvs,
            "mdtrt_id": visit.mdtrt_id,
            "ipt_otp_no": visit.ipt_otp_no,
            "chrg_bchno": chrg_bchno,
            "status": "registered",
            "attempt": request.attempt,
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


def _share(row: InsuranceSettlement) -> InsuranceShare:
    split = PaymentSplit(
        total_fen=row.total_fen, fund_fen=row.fund_fen, account_fen=row.account_fen, cash_fen=row.cash_fen
    )
    return InsuranceShare(setl_id=row.setl_id or "", split=split)


def _fee_line(request: InsuranceSettleRequest, context: _VisitContext) -> FeeLine:
    national, own, tcm_way = _FEE_ITEMS[request.kind]
    return FeeLine(
        feedetl_sn=f"{request.bill_id[-27:]}-1",
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

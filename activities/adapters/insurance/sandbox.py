"""Sandbox 医保 for development: deterministic persons and the shared split rules (`split.py`).

Dev only. Its state is the record of the calls it received (`sandbox_calls`, one row per operation and idempotency
key, like every sandbox peer), so a retried activity is answered from the record and a restarted worker finds the
same settlements; nothing else is stored. What it keeps is deliberately simple:

- a person is derived from the credential number (the same number always gives the same person, insurance type and
  opening account balance); ID-card numbers and names are never recorded;
- the personal account balance is the opening balance minus the account part of settlements that were neither
  cancelled (2208) nor reversed (2601);
- the fee total given to `settle` is trusted rather than checked against the uploaded fee lines;
- a mobile order's insurance part settles at 6202 (ordStas 4); its self-pay part is the payment channel's business;
  mobile refunds are whole (ALL) only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.errors import AdapterRefusal, InvalidCallback
from activities.adapters.insurance.split import DEFAULT_POLICY, SplitPolicy, split
from activities.adapters.sandbox import CALLS, recorder_for, sign_callback, utcnow, verify_callback
from core.crypto.sm import mask, sm3_hex
from core.settings import Settings
from models.insurance import (
    CertType,
    Coverage,
    DailyCheckDetailQuery,
    DailyCheckDetailResult,
    DailyCheckLineResult,
    DailyCheckOutcome,
    DailyCheckQuery,
    DailyCheckResult,
    FeeLine,
    FeeLineResult,
    FeeUpload,
    InsuranceCredential,
    InsuranceVisit,
    InsuredPerson,
    InsuredRef,
    MobileAuthorization,
    MobileOrder,
    MobileOrderQuery,
    MobileOrderRequest,
    MobileOrderStatus,
    MobilePayRequest,
    MobilePayResult,
    MobileRefundRequest,
    MobileRefundResult,
    MobileRefundStatus,
    MobileSettlementNotice,
    PaymentSplit,
    Reversal,
    Settlement,
    SettlementCancellation,
    SettlementScope,
    SettleRequest,
    VisitRequest,
)

SYSTEM = "insurance"
_Callback = TypeVar("_Callback", bound=BaseModel)
ADMDVS = "110000"  # every sandbox person is insured in Beijing
_LOCAL = ZoneInfo("Asia/Shanghai")
_PAID = "4"  # ordStas: 医保支付完成
_REFUNDED = "7"
_REVOKED = "12"


def _digest(*parts: str) -> str:
    return sm3_hex(":".join(parts).encode())


def _split_model(record: Mapping[str, Any]) -> PaymentSplit:
    return PaymentSplit(
        total_fen=record["total_fen"],
        fund_fen=record["fund_fen"],
        account_fen=record["account_fen"],
        cash_fen=record["cash_fen"],
    )


def _amounts(value: PaymentSplit) -> dict[str, int]:
    return {
        "total_fen": value.total_fen,
        "fund_fen": value.fund_fen,
        "account_fen": value.account_fen,
        "cash_fen": value.cash_fen,
    }


class SandboxInsurance:
    name = "sandbox"

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: Settings, policy: SplitPolicy | None = None
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._recorder = recorder_for(sessions, settings)
        self._policy = policy or DEFAULT_POLICY

    # --- persons and visits ----------------------------------------------------------------------------------------

    async def query_person(self, *, credential: InsuranceCredential) -> InsuredPerson:
        await self._recorder.gate(SYSTEM, "query_person", _digest(credential.cert_no))
        psn_no = f"{ADMDVS}SB{int(_digest(credential.cert_no)[:12], 16) % 10**12:012d}"
        insutype = self._insutype(psn_no)
        spent = await self._account_spent(psn_no)
        return InsuredPerson(
            psn_no=psn_no,
            psn_name=credential.psn_name or "医保测试人员",
            psn_cert_type="01" if credential.cert_type == CertType.ID_CARD else None,
            certno_masked=mask(credential.cert_no) if credential.cert_type == CertType.ID_CARD else None,
            coverages=[
                Coverage(
                    insutype=insutype,
                    psn_type="11" if insutype == "310" else "1501",
                    balance_fen=self._opening_balance(psn_no) - spent,
                    insuplc_admdvs=ADMDVS,
                    psn_insu_stas="1",
                )
            ],
        )

    async def register_visit(
        self, *, idempotency_key: str, requested_at: datetime, request: VisitRequest
    ) -> InsuranceVisit:
        # The credential is PII and stays out of the record.
        record = {"psn_no": request.insured.psn_no, "ipt_otp_no": request.ipt_otp_no, "dept_code": request.dept_code}

        async def perform(session: AsyncSession) -> dict[str, Any]:
            return {"mdtrt_id": f"SBMD{_digest('2201', idempotency_key)[:26].upper()}"}

        answer = await self._recorder.once(SYSTEM, "register_visit", idempotency_key, record, perform)
        return InsuranceVisit(insured=request.insured, mdtrt_id=answer["mdtrt_id"], ipt_otp_no=request.ipt_otp_no)

    async def cancel_visit(self, *, idempotency_key: str, requested_at: datetime, visit: InsuranceVisit) -> None:
        async def perform(session: AsyncSession) -> dict[str, Any]:
            if await self._active_settlements(session, mdtrt_id=visit.mdtrt_id):
                raise AdapterRefusal("VISIT_SETTLED", "该就诊已有结算，请先撤销结算")
            return {}

        await self._recorder.once(SYSTEM, "cancel_visit", idempotency_key, {"mdtrt_id": visit.mdtrt_id}, perform)

    # --- fees ------------------------------------------------------------------------------------------------------

    async def upload_fees(
        self,
        *,
        idempotency_key: str,
        requested_at: datetime,
        visit: InsuranceVisit,
        chrg_bchno: str,
        lines: list[FeeLine],
    ) -> FeeUpload:
        if not lines:
            raise AdapterRefusal("NO_FEES", "没有需要上传的费用明细")
        record = {
            "mdtrt_id": visit.mdtrt_id,
            "chrg_bchno": chrg_bchno,
            "lines": {line.feedetl_sn: line.det_item_fee_sumamt_fen for line in lines},
        }

        async def perform(session: AsyncSession) -> dict[str, Any]:
            return {}

        await self._recorder.once(SYSTEM, "upload_fees", idempotency_key, record, perform)
        # The sandbox catalogue reimburses everything: each line is wholly within the policy scope.
        return FeeUpload(
            mdtrt_id=visit.mdtrt_id,
            chrg_bchno=chrg_bchno,
            lines=[
                FeeLineResult(
                    feedetl_sn=line.feedetl_sn,
                    det_item_fee_sumamt_fen=line.det_item_fee_sumamt_fen,
                    cnt=line.cnt,
                    pric=line.pric,
                    inscp_scp_fen=line.det_item_fee_sumamt_fen,
                    chrgitm_lv="01",
                )
                for line in lines
            ],
        )

    async def cancel_fees(
        self, *, idempotency_key: str, requested_at: datetime, visit: InsuranceVisit, chrg_bchno: str
    ) -> None:
        async def perform(session: AsyncSession) -> dict[str, Any]:
            settled = await self._active_settlements(session, mdtrt_id=visit.mdtrt_id)
            if any(chrg_bchno in ("0000", item["chrg_bchno"]) for item in settled):
                raise AdapterRefusal("FEES_SETTLED", "费用明细已结算，不能撤销")
            return {}

        record = {"mdtrt_id": visit.mdtrt_id, "chrg_bchno": chrg_bchno}
        await self._recorder.once(SYSTEM, "cancel_fees", idempotency_key, record, perform)

    # --- settlement ------------------------------------------------------------------------------------------------

    async def pre_settle(self, *, request: SettleRequest) -> Settlement:
        await self._recorder.gate(SYSTEM, "pre_settle", request.visit.mdtrt_id)
        async with self._sessions() as session:
            record = await self._split_record(session, request.visit.insured, request.total_fen, request.use_account)
        return self._settlement(request.visit, {**record, "chrg_bchno": request.chrg_bchno})

    async def settle(self, *, idempotency_key: str, requested_at: datetime, request: SettleRequest) -> Settlement:
        record = {
            "psn_no": request.visit.insured.psn_no,
            "mdtrt_id": request.visit.mdtrt_id,
            "chrg_bchno": request.chrg_bchno,
            "total_fen": request.total_fen,
        }

        async def perform(session: AsyncSession) -> dict[str, Any]:
            await self._lock_person(session, request.visit.insured.psn_no)
            amounts = await self._split_record(session, request.visit.insured, request.total_fen, request.use_account)
            return {
                **amounts,
                **record,
                "setl_id": f"SBST{_digest('2207', idempotency_key)[:26].upper()}",
                "msgid": self.msgid(idempotency_key),
                "insutype": request.visit.insured.insutype,
                "clr_optins": request.visit.insured.insuplc_admdvs,
                "setl_time": utcnow().isoformat(),
            }

        answer = await self._recorder.once(SYSTEM, "settle", idempotency_key, record, perform)
        return self._settlement(request.visit, answer)

    async def cancel_settlement(
        self, *, idempotency_key: str, requested_at: datetime, visit: InsuranceVisit, setl_id: str
    ) -> SettlementCancellation:
        async def perform(session: AsyncSession) -> dict[str, Any]:
            await self._lock_person(session, visit.insured.psn_no)
            active = await self._active_settlements(session, mdtrt_id=visit.mdtrt_id)
            found = next((item for item in active if item["setl_id"] == setl_id), None)
            if found is None:
                raise AdapterRefusal("SETTLEMENT_NOT_ACTIVE", "结算不存在或已撤销")
            return {**_amounts(_split_model(found)), "original_setl_id": setl_id, "setl_id": f"{setl_id}R"}

        record = {"mdtrt_id": visit.mdtrt_id, "setl_id": setl_id}
        answer = await self._recorder.once(SYSTEM, "cancel_settlement", idempotency_key, record, perform)
        return SettlementCancellation(original_setl_id=setl_id, setl_id=answer["setl_id"], split=_split_model(answer))

    async def reverse(
        self,
        *,
        idempotency_key: str,
        requested_at: datetime,
        insured: InsuredRef,
        original_infno: str,
        original_msgid: str,
    ) -> Reversal:
        async def perform(session: AsyncSession) -> dict[str, Any]:
            await self._lock_person(session, insured.psn_no)
            return {"original_msgid": original_msgid}

        # Reversing a message that never settled is a success with nothing to undo, as the platform answers it.
        record = {"original_infno": original_infno, "original_msgid": original_msgid}
        await self._recorder.once(SYSTEM, "reverse", idempotency_key, record, perform)
        return Reversal(original_infno=original_infno, original_msgid=original_msgid)

    @staticmethod
    def msgid(idempotency_key: str) -> str:
        """The message id the sandbox gives the settlement of a key (the id a reversal names)."""
        return f"SB{_digest('msgid', idempotency_key)[:28].upper()}"

    # --- reconciliation --------------------------------------------------------------------------------------------

    async def daily_check(self, *, query: DailyCheckQuery) -> DailyCheckResult:
        await self._recorder.gate(SYSTEM, "daily_check", f"{query.setl_optins}:{query.begin}:{query.end}")
        async with self._sessions() as session:
            settled = [
                item
                for item in await self._active_settlements(session)
                if item["clr_optins"] == query.setl_optins
                and item["insutype"] == query.insutype
                and query.begin <= _settled_on(item) <= query.end
            ]
        ours = (query.total_fen, query.fund_fen, query.account_fen, query.settlement_count)
        theirs = (
            sum(item["total_fen"] for item in settled),
            sum(item["fund_fen"] for item in settled),
            sum(item["account_fen"] for item in settled),
            len(settled),
        )
        balanced = ours == theirs
        return DailyCheckResult(
            setl_optins=query.setl_optins,
            balanced=balanced,
            stmt_rslt="0" if balanced else "1",
            description=None if balanced else f"平台：总额 {theirs[0]} 分，基金 {theirs[1]} 分，笔数 {theirs[3]}",
        )

    async def daily_check_detail(
        self, *, idempotency_key: str, requested_at: datetime, query: DailyCheckDetailQuery
    ) -> DailyCheckDetailResult:
        await self._recorder.gate(SYSTEM, "daily_check_detail", idempotency_key)
        async with self._sessions() as session:
            settled = {
                item["setl_id"]: item
                for item in await self._active_settlements(session)
                if item["clr_optins"] == query.setl_optins and query.begin <= _settled_on(item) <= query.end
            }
        results = []
        for line in query.lines:
            if line.cancelled:
                continue
            item = settled.pop(line.setl_id, None)
            if item is None:
                outcome = DailyCheckOutcome.HOSPITAL_ONLY
            elif (item["total_fen"], item["fund_fen"], item["account_fen"]) != (
                line.total_fen,
                line.fund_fen,
                line.account_fen,
            ):
                outcome = DailyCheckOutcome.AMOUNT_MISMATCH
            else:
                outcome = DailyCheckOutcome.MATCHED
            results.append(DailyCheckLineResult(setl_id=line.setl_id, outcome=outcome))
        results += [
            DailyCheckLineResult(setl_id=setl_id, outcome=DailyCheckOutcome.PLATFORM_ONLY) for setl_id in settled
        ]
        return DailyCheckDetailResult(file_qury_no=f"SBF{_digest('3202', idempotency_key)[:20]}", lines=results)

    # --- mobile payment --------------------------------------------------------------------------------------------

    async def upload_mobile_order(
        self, *, idempotency_key: str, requested_at: datetime, request: MobileOrderRequest
    ) -> MobileOrder:
        # Name and ID number are PII and stay out of the record.
        record = {
            "psn_no": request.visit.insured.psn_no,
            "mdtrt_id": request.visit.mdtrt_id,
            "med_org_ord": request.med_org_ord,
            "total_fen": request.total_fen,
        }

        async def perform(session: AsyncSession) -> dict[str, Any]:
            key = _digest("6201", idempotency_key)
            return {"pay_ord_id": f"SBPO{key[:26].upper()}", "pay_token": f"SBPT{key[26:58]}"}

        answer = await self._recorder.once(SYSTEM, "upload_mobile_order", idempotency_key, record, perform)
        return MobileOrder(
            pay_ord_id=answer["pay_ord_id"], pay_token=answer["pay_token"], med_org_ord=request.med_org_ord
        )

    async def mobile_pay(
        self, *, idempotency_key: str, requested_at: datetime, request: MobilePayRequest
    ) -> MobilePayResult:
        order = request.order

        async def perform(session: AsyncSession) -> dict[str, Any]:
            uploaded = await self._mobile_order(session, order)
            if await self._records(session, "mobile_pay", "pay_ord_id", order.pay_ord_id):
                raise AdapterRefusal("ORDER_PAID", "该医保订单已支付")
            if await self._records(session, "cancel_mobile_order", "pay_ord_id", order.pay_ord_id):
                raise AdapterRefusal("ORDER_REVOKED", "该医保订单已撤销")
            await self._lock_person(session, request.visit.insured.psn_no)
            amounts = await self._split_record(
                session, request.visit.insured, uploaded["total_fen"], request.use_account
            )
            return {
                **amounts,
                "pay_ord_id": order.pay_ord_id,
                "psn_no": request.visit.insured.psn_no,
                "mdtrt_id": request.visit.mdtrt_id,
                "med_org_ord": order.med_org_ord,
                "insutype": request.visit.insured.insutype,
                "clr_optins": request.visit.insured.insuplc_admdvs,
            }

        answer = await self._recorder.once(
            SYSTEM, "mobile_pay", idempotency_key, {"pay_ord_id": order.pay_ord_id}, perform
        )
        return MobilePayResult(pay_ord_id=order.pay_ord_id, ord_stas=_PAID, split=_split_model(answer))

    async def mobile_refund(
        self, *, idempotency_key: str, requested_at: datetime, request: MobileRefundRequest
    ) -> MobileRefundResult:
        order = request.order
        if request.refund_type != SettlementScope.ALL:
            raise AdapterRefusal("PARTIAL_REFUND_UNSUPPORTED", "沙箱仅支持全额退费")
        app_refd_sn = f"SBRF{_digest('6203', idempotency_key)[:26].upper()}"

        async def perform(session: AsyncSession) -> dict[str, Any]:
            await self._mobile_order(session, order)
            paid = await self._records(session, "mobile_pay", "pay_ord_id", order.pay_ord_id)
            if not paid:
                raise AdapterRefusal("ORDER_NOT_PAID", "医保订单未支付，无法退费")
            if await self._records(session, "mobile_refund", "pay_ord_id", order.pay_ord_id):
                raise AdapterRefusal("ORDER_REFUNDED", "该医保订单已退费")
            wanted = _amounts(request.split)
            if wanted != _amounts(_split_model(paid[0])):
                raise AdapterRefusal("REFUND_NOT_WHOLE", "全部退费须与原结算各项金额一致")
            return {**wanted, "pay_ord_id": order.pay_ord_id}

        record = {"pay_ord_id": order.pay_ord_id, **_amounts(request.split)}
        await self._recorder.once(SYSTEM, "mobile_refund", idempotency_key, record, perform)
        return MobileRefundResult(
            pay_ord_id=order.pay_ord_id,
            app_refd_sn=app_refd_sn,
            status=MobileRefundStatus.SUCCEEDED,
            split=request.split,
        )

    async def query_mobile_order(self, *, query: MobileOrderQuery) -> MobileOrderStatus:
        await self._recorder.gate(SYSTEM, "query_mobile_order", query.order.pay_ord_id)
        async with self._sessions() as session:
            await self._mobile_order(session, query.order)
            paid = await self._records(session, "mobile_pay", "pay_ord_id", query.order.pay_ord_id)
            refunded = await self._records(session, "mobile_refund", "pay_ord_id", query.order.pay_ord_id)
            revoked = await self._records(session, "cancel_mobile_order", "pay_ord_id", query.order.pay_ord_id)
        if revoked:
            return MobileOrderStatus(pay_ord_id=query.order.pay_ord_id, ord_stas=_REVOKED)
        if not paid:
            return MobileOrderStatus(pay_ord_id=query.order.pay_ord_id, ord_stas="0")
        return MobileOrderStatus(
            pay_ord_id=query.order.pay_ord_id,
            ord_stas=_REFUNDED if refunded else _PAID,
            split=_split_model(paid[0]),
            setl_type=SettlementScope.ALL,
        )

    async def cancel_mobile_order(
        self, *, idempotency_key: str, requested_at: datetime, query: MobileOrderQuery
    ) -> None:
        async def perform(session: AsyncSession) -> dict[str, Any]:
            await self._mobile_order(session, query.order)
            if await self._records(session, "mobile_pay", "pay_ord_id", query.order.pay_ord_id):
                raise AdapterRefusal("ORDER_PAID", "医保订单已支付，不能撤销，请走退费")
            return {}

        record = {"pay_ord_id": query.order.pay_ord_id}
        await self._recorder.once(SYSTEM, "cancel_mobile_order", idempotency_key, record, perform)

    def parse_mobile_authorization(self, headers: Mapping[str, str], body: bytes) -> MobileAuthorization:
        return self._verified(MobileAuthorization, headers, body)

    def simulate_authorization(self, med_org_ord: str, *, user_name: str, id_no: str) -> tuple[dict[str, str], bytes]:
        """The signed authorization the sandbox platform's authorization page reports when the patient authorizes
        paying `med_org_ord` with 医保 (for the dev stack); the same patient and order always get the same payAuthNo."""
        authorization = MobileAuthorization(
            med_org_ord=med_org_ord,
            pay_auth_no=f"SBAU{_digest('auth', med_org_ord, id_no)[:28].upper()}",
            user_name=user_name,
            id_no=id_no,
        )
        body = authorization.model_dump_json().encode()
        return sign_callback(self._settings.sandbox_notify_secret, body), body

    def parse_mobile_notice(self, headers: Mapping[str, str], body: bytes) -> MobileSettlementNotice:
        return self._verified(MobileSettlementNotice, headers, body)

    def _verified(self, model: type[_Callback], headers: Mapping[str, str], body: bytes) -> _Callback:
        verify_callback(self._settings.sandbox_notify_secret, headers, body)
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            raise InvalidCallback(f"callback body is not a {model.__name__}") from exc

    async def simulate_notice(self, pay_ord_id: str) -> tuple[dict[str, str], bytes]:
        """The signed settlement notice the sandbox platform sends for a paid mobile order (for the dev stack)."""
        async with self._sessions() as session:
            paid = await self._records(session, "mobile_pay", "pay_ord_id", pay_ord_id)
        if not paid:
            raise AdapterRefusal("ORDER_NOT_PAID", "医保订单未支付")
        notice = MobileSettlementNotice(
            pay_ord_id=pay_ord_id,
            med_org_ord=paid[0]["med_org_ord"],
            call_type="02",
            trace_time=f"{datetime.now(_LOCAL):%Y%m%d%H%M%S}",
            setl_type=SettlementScope.ALL,
            split=_split_model(paid[0]),
        )
        body = notice.model_dump_json().encode()
        return sign_callback(self._settings.sandbox_notify_secret, body), body

    # --- helpers ---------------------------------------------------------------------------------------------------

    @staticmethod
    def _insutype(psn_no: str) -> str:
        return "310" if int(_digest("insutype", psn_no)[:2], 16) % 2 == 0 else "390"

    def _opening_balance(self, psn_no: str) -> int:
        # Residents (390) have no personal account; employees (310) open with 200.00–1199.00 元.
        if self._insutype(psn_no) != "310":
            return 0
        return 20_000 + int(_digest("balance", psn_no)[:8], 16) % 1_000 * 100

    async def _split_record(
        self, session: AsyncSession, insured: InsuredRef, total_fen: int, use_account: bool
    ) -> dict[str, Any]:
        spent = await self._spent(session, insured.psn_no)
        balance = self._opening_balance(insured.psn_no) - spent
        shares = split(
            total_fen, self._policy.rule(insured.insutype), account_balance_fen=balance, use_account=use_account
        )
        return {
            "total_fen": shares.total_fen,
            "fund_fen": shares.fund_fen,
            "account_fen": shares.account_fen,
            "cash_fen": shares.cash_fen,
            "deductible_fen": shares.deductible_fen,
            "balance_fen": balance - shares.account_fen,
        }

    @staticmethod
    def _settlement(visit: InsuranceVisit, record: Mapping[str, Any]) -> Settlement:
        return Settlement(
            mdtrt_id=visit.mdtrt_id,
            psn_no=visit.insured.psn_no,
            setl_id=record.get("setl_id"),
            medins_setl_id=record.get("msgid"),
            setl_time=datetime.fromisoformat(record["setl_time"]) if record.get("setl_time") else None,
            split=_split_model(record),
            balance_fen=record["balance_fen"],
            inscp_scp_fen=record["total_fen"],
            deductible_fen=record["deductible_fen"],
            pooled_fund_fen=record["fund_fen"],
            clr_optins=visit.insured.insuplc_admdvs,
            clr_type="11",
        )

    @staticmethod
    async def _lock_person(session: AsyncSession, psn_no: str) -> None:
        # Serializes settling and reversing for one person, so two settlements cannot both spend one balance.
        await session.execute(select(func.pg_advisory_xact_lock(int(_digest("lock", psn_no)[:15], 16))))

    @staticmethod
    async def _records(session: AsyncSession, operation: str, field: str, value: str) -> list[dict[str, Any]]:
        """Finished responses of `operation` whose recorded request has `field` == `value`, oldest first.

        A call in progress (including the caller's own, claimed in this transaction) has an empty response: skipped.
        """
        rows = await session.scalars(
            select(CALLS.c.response)
            .where(
                CALLS.c.system == SYSTEM,
                CALLS.c.operation == operation,
                CALLS.c.request[field].astext == value,
            )
            .order_by(CALLS.c.id)
        )
        return [dict(row) for row in rows if row]

    async def _mobile_order(self, session: AsyncSession, order: MobileOrder) -> dict[str, Any]:
        rows = await session.execute(
            select(CALLS.c.request, CALLS.c.response).where(
                CALLS.c.system == SYSTEM,
                CALLS.c.operation == "upload_mobile_order",
                CALLS.c.response["pay_ord_id"].astext == order.pay_ord_id,
            )
        )
        found = rows.first()
        if found is None or found.response["pay_token"] != order.pay_token:
            raise AdapterRefusal("ORDER_NOT_EXIST", "医保订单不存在或支付令牌不符")
        return dict(found.request)

    async def _active_settlements(
        self, session: AsyncSession, *, mdtrt_id: str | None = None, psn_no: str | None = None
    ) -> list[dict[str, Any]]:
        """Settlements (2207 and 6202) neither cancelled nor reversed, with the day they settled on."""
        query = select(CALLS.c.operation, CALLS.c.request, CALLS.c.response, CALLS.c.created_at).where(
            CALLS.c.system == SYSTEM,
            CALLS.c.operation.in_(("settle", "mobile_pay", "cancel_settlement", "reverse", "mobile_refund")),
        )
        # Calls in progress have an empty response and do not count yet.
        rows = [row for row in (await session.execute(query.order_by(CALLS.c.id))).all() if row.response]
        cancelled = {row.response["original_setl_id"] for row in rows if row.operation == "cancel_settlement"}
        reversed_ = {row.response["original_msgid"] for row in rows if row.operation == "reverse"}
        refunded = {row.response["pay_ord_id"] for row in rows if row.operation == "mobile_refund"}
        active = []
        for row in rows:
            if row.operation == "settle":
                item = dict(row.response)
                if item["setl_id"] in cancelled or item["msgid"] in reversed_:
                    continue
            elif row.operation == "mobile_pay" and row.response["pay_ord_id"] not in refunded:
                item = {**row.response, "setl_id": row.response["pay_ord_id"], "chrg_bchno": ""}
            else:
                continue
            if (mdtrt_id is None or item["mdtrt_id"] == mdtrt_id) and (psn_no is None or item["psn_no"] == psn_no):
                active.append({**item, "settled_at": row.created_at})
        return active

    async def _spent(self, session: AsyncSession, psn_no: str) -> int:
        return sum(item["account_fen"] for item in await self._active_settlements(session, psn_no=psn_no))

    async def _account_spent(self, psn_no: str) -> int:
        async with self._sessions() as session:
            return await self._spent(session, psn_no)


def _settled_on(item: Mapping[str, Any]) -> date:
    settled_at: datetime = item["settled_at"]
    return settled_at.astimezone(_LOCAL).date()

"""The national medical insurance platform (国家医疗保障信息平台), 定点医药机构接口 over HTTP/JSON.

Wire format, as cross-checked across third-party HIS integrations (no official PDF was available; where they
disagree the most common form is used and the choice is noted where it is made):

- every transaction is a POST of one JSON envelope {infno, msgid, mdtrtarea_admvs, insuplc_admdvs, recer_sys_code,
  dev_no, dev_safe_info, cainfo, signtype, infver, opter_type, opter, opter_name, inf_time, fixmedins_code,
  fixmedins_name, sign_no, input} to `service_path`; the answer is {infcode (0 ok, -1 refused), inf_refmsgid,
  refmsg_time, respond_time, err_msg, output};
- the gateway authenticates the institution with the headers x-tif-paasid, x-tif-timestamp (Unix seconds),
  x-tif-nonce and x-tif-signature = hex SHA-256 of timestamp + secret + nonce + timestamp;
- amounts are 元 numbers with 2 decimals: they are written from integer fen and read back into fen exactly, through
  Decimal, never float.

The mobile payment transactions (6201–6401) are sent in the same envelope with the mobile spec's camelCase field
names under `input.data`. In production they go through the mobile payment centre's own gateway (SM4-encrypted,
SM2-signed `encData`/`signData`), which this adapter does not implement yet.

Idempotency and unknown outcomes: see `activities.adapters.insurance`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import itertools
import json
import secrets
import zipfile
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.errors import AdapterError, AdapterRefusal, InvalidCallback
from activities.adapters.insurance import SettlementUnknown
from activities.adapters.insurance.split import fen_to_yuan, yuan_to_fen
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
    FundDetail,
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

_SHANGHAI = ZoneInfo("Asia/Shanghai")
_TIME = "%Y-%m-%d %H:%M:%S"
_NOTICE_WINDOW_S = 300
_PROBES = 4
_T = TypeVar("_T")

# 3202 result file: stmt_rslt per settlement. The codes are our reading of third-party code, not the spec text.
_DETAIL_OUTCOMES = {
    "0": DailyCheckOutcome.MATCHED,
    "1": DailyCheckOutcome.AMOUNT_MISMATCH,
    "2": DailyCheckOutcome.HOSPITAL_ONLY,
    "3": DailyCheckOutcome.PLATFORM_ONLY,
}


class NhsaConfig(BaseModel):
    """One institution's connection to the platform (per campus, if campuses are registered separately)."""

    model_config = ConfigDict(frozen=True)

    base_url: str
    service_path: str = "/fsi/api/callFsiService/callService"
    fixmedins_code: str = Field(min_length=12, max_length=12)  # 定点医药机构编号
    fixmedins_name: str
    mdtrtarea_admvs: str = Field(min_length=6, max_length=6)  # 就医地医保区划
    # 参保地区划 for calls that are not about one person (1101, 3201, …); calls about a person use the person's.
    insuplc_admdvs: str = Field(min_length=6, max_length=6)
    paasid: str
    secret: SecretStr
    opter: str
    opter_name: str
    opter_type: str = "1"  # 1 经办人, 2 自助终端, 3 移动终端
    sign_no: str = ""  # from 9001 签到 (operator sign-in), which this adapter does not perform
    recer_sys_code: str = "MBS_LOCAL"  # the value in the sample messages seen
    infver: str = "V1.0"
    dev_no: str = ""
    dev_safe_info: str = ""
    cainfo: str = ""
    signtype: str = ""
    pub_hosp_rfom_flag: str = "0"  # 6201 公立医院改革标志
    timeout_s: float = Field(default=30.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)


def _gateway_headers(paasid: str, secret: str) -> dict[str, str]:
    timestamp = str(int(datetime.now(UTC).timestamp()))
    nonce = secrets.token_hex(16)
    return {
        "x-tif-paasid": paasid,
        "x-tif-timestamp": timestamp,
        "x-tif-nonce": nonce,
        "x-tif-signature": _gateway_signature(timestamp, secret, nonce),
    }


def _gateway_signature(timestamp: str, secret: str, nonce: str) -> str:
    return hashlib.sha256(f"{timestamp}{secret}{nonce}{timestamp}".encode()).hexdigest()


def message_id(fixmedins_code: str, at: datetime, sequence: int) -> str:
    """msgid: institution code (12) + yyyyMMddHHmmss in Beijing time (14) + sequence (4) = 30 characters."""
    return f"{fixmedins_code}{_local(at):%Y%m%d%H%M%S}{sequence % 10_000:04d}"


def keyed_sequence(infno: str, idempotency_key: str, probe: int = 0) -> int:
    """The msgid sequence of a mutating call: the same for every retry of one step, spread across steps."""
    return int(sm3_hex(f"{infno}:{idempotency_key}:{probe}".encode())[:8], 16) % 10_000


def encode_json(value: Any) -> str:
    """JSON with Decimal written as an exact number (the standard encoder would need a float)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return (
            "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{encode_json(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode_json(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def decode_json(content: bytes) -> Any:
    return json.loads(content, parse_float=Decimal)


def _local(at: datetime) -> datetime:
    # The convention is aware UTC; read a naive value as UTC rather than guess a zone.
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(_SHANGHAI)


def _flag(value: bool) -> str:
    return "1" if value else "0"


# --- reading answers: every helper raises ValueError on a malformed field ------------------------------------------


def _node(output: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = output.get(name)
    if not isinstance(value, Mapping):
        raise ValueError(f"answer has no {name!r} object")
    return value


def _rows(output: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = output.get(name) or []
    if not isinstance(value, list) or not all(isinstance(row, Mapping) for row in value):
        raise ValueError(f"answer field {name!r} is not a list of objects")
    return value


def _text(node: Mapping[str, Any], field: str) -> str:
    value = node.get(field)
    if value is None or value == "":
        raise ValueError(f"answer field {field!r} is missing")
    return str(value)


def _opt_text(node: Mapping[str, Any], field: str) -> str | None:
    value = node.get(field)
    return None if value is None or value == "" else str(value)


def _fen(node: Mapping[str, Any], field: str, *, signed: bool = False, default: int | None = None) -> int:
    value = node.get(field)
    if value is None or value == "":
        if default is None:
            raise ValueError(f"answer field {field!r} is missing")
        return default
    try:
        return yuan_to_fen(value, signed=signed)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"answer field {field!r}: {exc}") from exc


def _opt_fen(node: Mapping[str, Any], field: str, *, signed: bool = False) -> int | None:
    return None if node.get(field) in (None, "") else _fen(node, field, signed=signed)


def _decimal(node: Mapping[str, Any], field: str) -> Decimal | None:
    value = node.get(field)
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"answer field {field!r} is not a number") from exc


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(str(value)[:19], _TIME).replace(tzinfo=_SHANGHAI).astimezone(UTC)


def _day(value: Any) -> date | None:
    return date.fromisoformat(str(value)[:10]) if value else None


def _settlement(output: Mapping[str, Any], *, signed: bool = False) -> Settlement:
    info = _node(output, "setlinfo")
    total, fund, account, cash = (
        _fen(info, name, signed=signed) for name in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay", "psn_cash_pay")
    )
    hospital = _fen(info, "hosp_part_amt", signed=signed, default=0)
    if signed and total < 0:  # a cancellation answers with the reversing (negative) amounts
        total, fund, account, cash, hospital = -total, -fund, -account, -cash, -hospital
    split = PaymentSplit(total_fen=total, fund_fen=fund, account_fen=account, cash_fen=cash, hospital_part_fen=hospital)
    # Some provinces count the account inside fund_pay_sumamt; there the parts exceed the total and we refuse the
    # answer rather than guess (see the PaymentSplit check). psn_part_amt, where given, must be account + cash.
    personal = _opt_fen(info, "psn_part_amt", signed=signed)
    if personal is not None and abs(personal) != split.account_fen + split.cash_fen:
        raise ValueError("psn_part_amt is not acct_pay + psn_cash_pay")
    return Settlement(
        mdtrt_id=_text(info, "mdtrt_id"),
        psn_no=_text(info, "psn_no"),
        setl_id=_opt_text(info, "setl_id"),
        medins_setl_id=_opt_text(info, "medins_setl_id"),
        setl_time=_timestamp(info.get("setl_time")),
        split=split,
        account_mutual_aid_fen=abs(_fen(info, "acct_mulaid_pay", signed=signed, default=0)),
        balance_fen=_opt_fen(info, "balc", signed=True),
        inscp_scp_fen=abs(_fen(info, "inscp_scp_amt", signed=signed, default=0)),
        fulamt_ownpay_fen=abs(_fen(info, "fulamt_ownpay_amt", signed=signed, default=0)),
        deductible_fen=abs(_fen(info, "act_pay_dedc", signed=signed, default=0)),
        pooled_fund_fen=abs(_fen(info, "hifp_pay", signed=signed, default=0)),
        clr_optins=_opt_text(info, "clr_optins"),
        clr_way=_opt_text(info, "clr_way"),
        clr_type=_opt_text(info, "clr_type"),
        fund_details=[
            FundDetail(
                fund_pay_type=_text(row, "fund_pay_type"),
                fund_pay_type_name=_opt_text(row, "fund_pay_type_name"),
                fund_payamt_fen=_fen(row, "fund_payamt", signed=True, default=0),
            )
            for row in _rows(output, "setldetail")
        ],
    )


def _mobile_split(node: Mapping[str, Any]) -> PaymentSplit:
    return PaymentSplit(
        total_fen=_fen(node, "feeSumamt"),
        fund_fen=_fen(node, "fundPay"),
        account_fen=_fen(node, "psnAcctPay"),
        cash_fen=_fen(node, "ownPayAmt"),
        hospital_part_fen=_fen(node, "hospPartAmt", default=0),
    )


class _NotOurs(Exception):
    """The answer belongs to another message that drew the same msgid (see `NhsaInsurance._transact`)."""


def _ours(condition: bool, what: str) -> None:
    if not condition:
        raise _NotOurs(what)


# Keys that mark an answer as belonging to some other transaction, for transactions that answer with nothing.
_FOREIGN = frozenset({"baseinfo", "result", "setlinfo", "stmtinfo", "fileinfo", "file_qury_no", "payOrdId"})


def _plain(output: Mapping[str, Any], msgid: str) -> None:
    _ours(not _FOREIGN & output.keys(), "an answer with content, where none is expected")


class NhsaInsurance:
    name = "nhsa"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession] | None,
        settings: Settings,
        config: NhsaConfig | None = None,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        # The platform holds all visit and settlement state, so this adapter keeps nothing in our database.
        if config is None:
            if not settings.insurance_nhsa:
                raise ValueError("the nhsa insurance adapter needs QIHUANG_INSURANCE_NHSA (JSON of NhsaConfig)")
            config = NhsaConfig.model_validate(settings.insurance_nhsa)
        self._config = config
        timeout = httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s)
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None
        self._url = config.base_url.rstrip("/") + config.service_path
        # Sequences of msgids for reads, unique in this process up to 10 000 a second.
        self._sequence = itertools.count(secrets.randbelow(10_000))

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # --- 1101 / 2201 / 2202 ----------------------------------------------------------------------------------------

    async def query_person(self, *, credential: InsuranceCredential) -> InsuredPerson:
        by_id_card = credential.cert_type == CertType.ID_CARD
        data = {
            "mdtrt_cert_type": credential.cert_type.value,
            "mdtrt_cert_no": credential.cert_no,
            "card_sn": "",
            "begntime": f"{_local(datetime.now(UTC)):{_TIME}}",
            "psn_cert_type": "01" if by_id_card else "",
            "certno": credential.cert_no if by_id_card else "",
            "psn_name": credential.psn_name or "",
        }

        def read(output: Mapping[str, Any], msgid: str) -> InsuredPerson:
            _ours("baseinfo" in output, "no baseinfo")
            base = _node(output, "baseinfo")
            _ours(not by_id_card or base.get("certno") in (None, "", credential.cert_no), "another person")
            return InsuredPerson(
                psn_no=_text(base, "psn_no"),
                psn_name=_text(base, "psn_name"),
                psn_cert_type=_opt_text(base, "psn_cert_type"),
                certno_masked=mask(_opt_text(base, "certno")),
                gend=_opt_text(base, "gend"),
                brdy=_day(base.get("brdy")),
                coverages=[
                    Coverage(
                        insutype=_text(row, "insutype"),
                        psn_type=_text(row, "psn_type"),
                        balance_fen=_fen(row, "balc", default=0),
                        insuplc_admdvs=_text(row, "insuplc_admdvs"),
                        psn_insu_stas=_opt_text(row, "psn_insu_stas"),
                        paus_insu_date=_day(row.get("paus_insu_date")),
                        cvlserv_flag=_opt_text(row, "cvlserv_flag"),
                        emp_name=_opt_text(row, "emp_name"),
                    )
                    for row in _rows(output, "insuinfo")
                ],
                identities=[_text(row, "psn_idet_type") for row in _rows(output, "idetinfo")],
            )

        person = await self._transact("1101", {"data": data}, read)
        if not person.coverages:
            raise AdapterRefusal("NOT_INSURED", "未查询到该人员的有效参保信息")
        return person

    async def register_visit(
        self, *, idempotency_key: str, requested_at: datetime, request: VisitRequest
    ) -> InsuranceVisit:
        data = {
            "psn_no": request.insured.psn_no,
            "insutype": request.insured.insutype,
            "begntime": f"{_local(request.begntime):{_TIME}}",
            "mdtrt_cert_type": request.cert_type.value,
            "mdtrt_cert_no": request.cert_no,
            "ipt_otp_no": request.ipt_otp_no,
            "atddr_no": request.atddr_no,
            "dr_name": request.dr_name,
            "dept_code": request.dept_code,
            "dept_name": request.dept_name,
            "caty": request.caty,
        }

        def read(output: Mapping[str, Any], msgid: str) -> InsuranceVisit:
            answer = output.get("data")
            _ours(isinstance(answer, Mapping) and "mdtrt_id" in answer, "no data.mdtrt_id")
            assert isinstance(answer, Mapping)
            _ours(answer.get("psn_no") in (None, "", request.insured.psn_no), "another person")
            _ours(answer.get("ipt_otp_no") in (None, "", request.ipt_otp_no), "another outpatient number")
            return InsuranceVisit(
                insured=request.insured, mdtrt_id=_text(answer, "mdtrt_id"), ipt_otp_no=request.ipt_otp_no
            )

        return await self._transact(
            "2201", {"data": data}, read, key=(idempotency_key, requested_at), insured=request.insured
        )

    async def cancel_visit(self, *, idempotency_key: str, requested_at: datetime, visit: InsuranceVisit) -> None:
        data = {"psn_no": visit.insured.psn_no, "mdtrt_id": visit.mdtrt_id, "ipt_otp_no": visit.ipt_otp_no}
        await self._transact("2202", {"data": data}, _plain, key=(idempotency_key, requested_at), insured=visit.insured)

    # --- 2204 / 2205 -----------------------------------------------------------------------------------------------

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
        sent = {line.feedetl_sn: line.det_item_fee_sumamt_fen for line in lines}

        def read(output: Mapping[str, Any], msgid: str) -> FeeUpload:
            _ours(isinstance(output.get("result"), list), "no result list")
            rows = _rows(output, "result")
            _ours({str(row.get("feedetl_sn")) for row in rows} == sent.keys(), "other fee lines")
            results = [
                FeeLineResult(
                    feedetl_sn=_text(row, "feedetl_sn"),
                    det_item_fee_sumamt_fen=_fen(row, "det_item_fee_sumamt"),
                    cnt=_decimal(row, "cnt") or Decimal(0),
                    pric=_decimal(row, "pric") or Decimal(0),
                    selfpay_prop=_decimal(row, "selfpay_prop"),
                    fulamt_ownpay_fen=_fen(row, "fulamt_ownpay_amt", default=0),
                    overlmt_fen=_fen(row, "overlmt_amt", default=0),
                    preselfpay_fen=_fen(row, "preselfpay_amt", default=0),
                    inscp_scp_fen=_fen(row, "inscp_scp_amt", default=0),
                    chrgitm_lv=_opt_text(row, "chrgitm_lv"),
                    med_chrgitm_type=_opt_text(row, "med_chrgitm_type"),
                )
                for row in rows
            ]
            if any(sent[result.feedetl_sn] != result.det_item_fee_sumamt_fen for result in results):
                raise ValueError("the platform changed a line's amount")
            return FeeUpload(mdtrt_id=visit.mdtrt_id, chrg_bchno=chrg_bchno, lines=results)

        details = [self._fee_detail(visit, chrg_bchno, line) for line in lines]
        return await self._transact(
            "2204", {"feedetail": details}, read, key=(idempotency_key, requested_at), insured=visit.insured
        )

    async def cancel_fees(
        self, *, idempotency_key: str, requested_at: datetime, visit: InsuranceVisit, chrg_bchno: str
    ) -> None:
        data = {"mdtrt_id": visit.mdtrt_id, "chrg_bchno": chrg_bchno, "psn_no": visit.insured.psn_no}
        await self._transact("2205", {"data": data}, _plain, key=(idempotency_key, requested_at), insured=visit.insured)

    # --- 2206 / 2207 / 2208 / 2601 ---------------------------------------------------------------------------------

    async def pre_settle(self, *, request: SettleRequest) -> Settlement:
        def read(output: Mapping[str, Any], msgid: str) -> Settlement:
            return self._checked_settlement(output, request)

        return await self._transact("2206", {"data": self._settle_data(request)}, read, insured=request.visit.insured)

    async def settle(self, *, idempotency_key: str, requested_at: datetime, request: SettleRequest) -> Settlement:
        data = self._settle_data(request)
        amounts = {
            "fulamt_ownpay_amt": request.fulamt_ownpay_fen,
            "overlmt_selfpay": request.overlmt_selfpay_fen,
            "preselfpay_amt": request.preselfpay_fen,
            "inscp_scp_amt": request.inscp_scp_fen,
        }
        data.update({field: fen_to_yuan(value) for field, value in amounts.items() if value is not None})
        if request.invono:
            data["invono"] = request.invono

        def read(output: Mapping[str, Any], msgid: str) -> Settlement:
            settlement = self._checked_settlement(output, request)
            if settlement.setl_id is None:
                raise ValueError("a settlement without setl_id")
            if settlement.medins_setl_id not in (None, msgid):
                raise ValueError(f"medins_setl_id {settlement.medins_setl_id} is not our msgid")
            return settlement

        # Anything unreadable here settled something we cannot trust: SettlementUnknown, so the caller reverses it.
        return await self._transact(
            "2207",
            {"data": data},
            read,
            key=(idempotency_key, requested_at),
            insured=request.visit.insured,
            settling=True,
        )

    async def cancel_settlement(
        self, *, idempotency_key: str, requested_at: datetime, visit: InsuranceVisit, setl_id: str
    ) -> SettlementCancellation:
        def read(output: Mapping[str, Any], msgid: str) -> SettlementCancellation:
            info = output.get("setlinfo")
            _ours(isinstance(info, Mapping) and info.get("mdtrt_id") == visit.mdtrt_id, "another visit")
            reversing = _settlement(output, signed=True)
            # The reversing entry has its own setl_id where the platform gives a new one.
            new_id = reversing.setl_id if reversing.setl_id != setl_id else None
            return SettlementCancellation(original_setl_id=setl_id, setl_id=new_id, split=reversing.split)

        data = {"setl_id": setl_id, "mdtrt_id": visit.mdtrt_id, "psn_no": visit.insured.psn_no}
        return await self._transact(
            "2208", {"data": data}, read, key=(idempotency_key, requested_at), insured=visit.insured
        )

    async def reverse(
        self,
        *,
        idempotency_key: str,
        requested_at: datetime,
        insured: InsuredRef,
        original_infno: str,
        original_msgid: str,
    ) -> Reversal:
        data = {"psn_no": insured.psn_no, "omsgid": original_msgid, "oinfno": original_infno}
        await self._transact("2601", {"data": data}, _plain, key=(idempotency_key, requested_at), insured=insured)
        return Reversal(original_infno=original_infno, original_msgid=original_msgid)

    # --- 3201 / 3202 -----------------------------------------------------------------------------------------------

    async def daily_check(self, *, query: DailyCheckQuery) -> DailyCheckResult:
        data = {
            "insutype": query.insutype,
            "clr_type": query.clr_type,
            "setl_optins": query.setl_optins,
            "stmt_begndate": query.begin.isoformat(),
            "stmt_enddate": query.end.isoformat(),
            "medfee_sumamt": fen_to_yuan(query.total_fen),
            "fund_pay_sumamt": fen_to_yuan(query.fund_fen),
            "acct_pay": fen_to_yuan(query.account_fen),
            "fixmedins_setl_cnt": query.settlement_count,
        }

        def read(output: Mapping[str, Any], msgid: str) -> DailyCheckResult:
            info = output.get("stmtinfo")
            _ours(isinstance(info, Mapping), "no stmtinfo")
            assert isinstance(info, Mapping)
            _ours(info.get("setl_optins") in (None, "", query.setl_optins), "another clearing institution")
            result = _text(info, "stmt_rslt")
            return DailyCheckResult(
                setl_optins=query.setl_optins,
                balanced=result == "0",
                stmt_rslt=result,
                description=_opt_text(info, "stmt_rslt_dscr"),
            )

        return await self._transact("3201", {"data": data}, read)

    async def daily_check_detail(
        self, *, idempotency_key: str, requested_at: datetime, query: DailyCheckDetailQuery
    ) -> DailyCheckDetailResult:
        key = (idempotency_key, requested_at)
        # 1. Upload our detail file (9101). Its layout — a zip holding one tab-separated text file of setl_id, mdtrt_id,
        # psn_no, medfee_sumamt, fund_pay_sumamt, acct_pay, refd_setl_flag — is our reading of third-party code.
        name = f"{self._config.fixmedins_code}{query.begin:%Y%m%d}{query.end:%Y%m%d}"
        rows = "\n".join(
            "\t".join(
                (
                    line.setl_id,
                    line.mdtrt_id,
                    line.psn_no,
                    format(fen_to_yuan(line.total_fen), "f"),
                    format(fen_to_yuan(line.fund_fen), "f"),
                    format(fen_to_yuan(line.account_fen), "f"),
                    _flag(line.cancelled),
                )
            )
            for line in query.lines
        )
        upload = {
            "fsUploadIn": {
                "in": base64.b64encode(_zip(f"{name}.txt", rows)).decode(),
                "filename": f"{name}.zip",
                "fixmedins_code": self._config.fixmedins_code,
            }
        }

        def read_upload(output: Mapping[str, Any], msgid: str) -> str:
            _ours(output.get("filename") in (None, "", f"{name}.zip") and "file_qury_no" in output, "another file")
            return _text(output, "file_qury_no")

        file_qury_no = await self._transact("9101", upload, read_upload, key=key)
        # 2. Ask for the comparison (3202).
        data = {
            "setl_optins": query.setl_optins,
            "file_qury_no": file_qury_no,
            "stmt_begndate": query.begin.isoformat(),
            "stmt_enddate": query.end.isoformat(),
            "medfee_sumamt": fen_to_yuan(query.total_fen),
            "fund_pay_sumamt": fen_to_yuan(query.fund_fen),
            "cash_payamt": fen_to_yuan(query.cash_fen),
            "fixmedins_setl_cnt": query.settlement_count,
        }

        def read_check(output: Mapping[str, Any], msgid: str) -> tuple[str, str]:
            _ours(isinstance(output.get("fileinfo"), Mapping), "no fileinfo")
            info = _node(output, "fileinfo")
            return _text(info, "file_qury_no"), _text(info, "filename")

        result_no, result_name = await self._transact("3202", {"data": data}, read_check, key=key)
        # 3. Download the result file (9102): one line per settlement, setl_id then stmt_rslt then an optional memo.
        content = await self._download(
            {
                "fsDownloadIn": {
                    "file_qury_no": result_no,
                    "filename": result_name,
                    "fixmedins_code": self._config.fixmedins_code,
                }
            }
        )
        try:
            lines = [_detail_result(row) for row in _unzip_text(content).splitlines() if row.strip()]
        except (ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise AdapterError(f"9102 {result_no}: unreadable result file: {exc}") from exc
        return DailyCheckDetailResult(file_qury_no=result_no, lines=lines)

    # --- mobile payment: 6201 / 6202 / 6203 / 6301 / 6401 / notice -------------------------------------------------

    async def upload_mobile_order(
        self, *, idempotency_key: str, requested_at: datetime, request: MobileOrderRequest
    ) -> MobileOrder:
        visit = request.visit
        data = {
            "orgCodg": self._config.fixmedins_code,
            "psnNo": visit.insured.psn_no,
            "insutype": visit.insured.insutype,
            "insuCode": visit.insured.insuplc_admdvs,
            "medOrgOrd": request.med_org_ord,
            "payAuthNo": request.pay_auth_no,
            "mdtrtId": visit.mdtrt_id,
            "iptOtpNo": visit.ipt_otp_no,
            "chrgBchno": request.chrg_bchno,
            "userName": request.user_name,
            "idType": request.id_type,
            "idNo": request.id_no,
            "feeType": request.fee_type,
            "medType": request.med_type,
            "psnSetlway": "01",
            "pubHospRfomFlag": self._config.pub_hosp_rfom_flag,
            "begntime": f"{_local(request.begntime):{_TIME}}",
            "deptCode": request.dept_code,
            "deptName": request.dept_name,
            "caty": request.caty,
            "atddrNo": request.atddr_no,
            "drName": request.dr_name,
            "acctUsedFlag": _flag(request.use_account),
            "medfeeSumamt": fen_to_yuan(request.total_fen),
            "feedetailList": [_mobile_fee_detail(request.chrg_bchno, line) for line in request.lines],
        }

        def read(output: Mapping[str, Any], msgid: str) -> MobileOrder:
            _ours({"payOrdId", "payToken"} <= output.keys() and "ordStas" not in output, "not a 6201 answer")
            _ours(output.get("medOrgOrd") in (None, "", request.med_org_ord), "another order")
            return MobileOrder(
                pay_ord_id=_text(output, "payOrdId"),
                pay_token=_text(output, "payToken"),
                med_org_ord=request.med_org_ord,
            )

        return await self._transact(
            "6201", {"data": data}, read, key=(idempotency_key, requested_at), insured=visit.insured
        )

    async def mobile_pay(
        self, *, idempotency_key: str, requested_at: datetime, request: MobilePayRequest
    ) -> MobilePayResult:
        data = {
            "payAuthNo": request.pay_auth_no,
            "payOrdId": request.order.pay_ord_id,
            "payToken": request.order.pay_token,
            "orgCodg": self._config.fixmedins_code,
            "orgBizSer": _serial("6202", idempotency_key),
            "chrgBchno": request.chrg_bchno,
            "feeType": request.fee_type,
            "mdtrtId": request.visit.mdtrt_id,
            "acctUsedFlag": _flag(request.use_account),
        }

        def read(output: Mapping[str, Any], msgid: str) -> MobilePayResult:
            _ours(output.get("payOrdId") == request.order.pay_ord_id, "another order")
            return MobilePayResult(
                pay_ord_id=request.order.pay_ord_id, ord_stas=_text(output, "ordStas"), split=_mobile_split(output)
            )

        return await self._transact(
            "6202",
            {"data": data},
            read,
            key=(idempotency_key, requested_at),
            insured=request.visit.insured,
            settling=True,
        )

    async def mobile_refund(
        self, *, idempotency_key: str, requested_at: datetime, request: MobileRefundRequest
    ) -> MobileRefundResult:
        app_refd_sn = _serial("6203", idempotency_key)
        data: dict[str, Any] = {
            "payOrdId": request.order.pay_ord_id,
            "appRefdSn": app_refd_sn,
            "appRefdTime": f"{_local(requested_at):%Y%m%d%H%M%S}",
            "totlRefdAmt": fen_to_yuan(request.split.total_fen),
            "psnAcctRefdAmt": fen_to_yuan(request.split.account_fen),
            "fundRefdAmt": fen_to_yuan(request.split.fund_fen),
            "cashRefdAmt": fen_to_yuan(request.split.cash_fen),
            "refdType": request.refund_type.value,
        }
        data.update({"payAuthNo": request.pay_auth_no} if request.pay_auth_no else {"ecToken": request.ec_token})

        def read(output: Mapping[str, Any], msgid: str) -> MobileRefundResult:
            _ours("refStatus" in output and output.get("appRefdSn") in (None, "", app_refd_sn), "another refund")
            return MobileRefundResult(
                pay_ord_id=request.order.pay_ord_id,
                app_refd_sn=app_refd_sn,
                status=MobileRefundStatus(_text(output, "refStatus")),
                split=request.split,
            )

        return await self._transact("6203", {"data": data}, read, key=(idempotency_key, requested_at))

    async def query_mobile_order(self, *, query: MobileOrderQuery) -> MobileOrderStatus:
        def read(output: Mapping[str, Any], msgid: str) -> MobileOrderStatus:
            _ours(output.get("payOrdId") == query.order.pay_ord_id and "refStatus" not in output, "another order")
            scope = _opt_text(output, "setlType")
            return MobileOrderStatus(
                pay_ord_id=query.order.pay_ord_id,
                ord_stas=_text(output, "ordStas"),
                # An order still in progress has no amounts yet; the answer says so by leaving them out.
                split=_mobile_split(output) if output.get("feeSumamt") not in (None, "") else None,
                setl_type=SettlementScope(scope) if scope else None,
            )

        return await self._transact("6301", {"data": self._order_query(query)}, read)

    async def cancel_mobile_order(
        self, *, idempotency_key: str, requested_at: datetime, query: MobileOrderQuery
    ) -> None:
        def read(output: Mapping[str, Any], msgid: str) -> bool:
            _ours("success" in output, "not a 6401 answer")
            return output.get("success") is True

        done = await self._transact(
            "6401", {"data": self._order_query(query)}, read, key=(idempotency_key, requested_at)
        )
        if not done:
            raise AdapterRefusal("REVOKE_FAILED", "医保订单撤销失败")

    def parse_mobile_authorization(self, headers: Mapping[str, str], body: bytes) -> MobileAuthorization:
        """The patient's payment authorization for one of our orders, authenticated by the gateway headers.

        Like the notice, the signature does not cover the body: the authorization is only ever used for the order it
        names, by the patient it names (checked against who owes the bill), and the platform refuses a payAuthNo that
        is not that person's.
        """
        authorization = self._verified(headers, body, "authorization")
        try:
            return MobileAuthorization(
                med_org_ord=_text(authorization, "medOrgOrd"),
                pay_auth_no=_text(authorization, "payAuthNo"),
                user_name=_text(authorization, "userName"),
                id_type=_opt_text(authorization, "idType") or "01",
                id_no=_text(authorization, "idNo"),
            )
        except ValueError as exc:
            raise InvalidCallback(f"not a payment authorization: {exc}") from exc

    def parse_mobile_notice(self, headers: Mapping[str, str], body: bytes) -> MobileSettlementNotice:
        """The settlement notice, authenticated by the gateway headers.

        The gateway signature covers the timestamp and nonce, not the body, so a notice only says "look at this
        order": callers confirm with 6301 before acting on it.
        """
        notice = self._verified(headers, body, "notice")
        try:
            return MobileSettlementNotice(
                pay_ord_id=_text(notice, "payOrdId"),
                med_org_ord=_text(notice, "medOrgOrd"),
                call_type=_text(notice, "callType"),
                trace_time=_text(notice, "traceTime"),
                setl_type=SettlementScope(_text(notice, "setlType")),
                split=_mobile_split(notice),
                revs_token=_opt_text(notice, "revsToken"),
            )
        except ValueError as exc:
            raise InvalidCallback(f"not a settlement notice: {exc}") from exc

    def _verified(self, headers: Mapping[str, str], body: bytes, what: str) -> Mapping[str, Any]:
        """The JSON object of a callback whose gateway headers verify (paasid, signature, a fresh timestamp)."""
        lowered = {name.lower(): value for name, value in headers.items()}
        timestamp, nonce = lowered.get("x-tif-timestamp", ""), lowered.get("x-tif-nonce", "")
        expected = _gateway_signature(timestamp, self._config.secret.get_secret_value(), nonce)
        if lowered.get("x-tif-paasid") != self._config.paasid or not hmac.compare_digest(
            expected, lowered.get("x-tif-signature", "").strip().lower()
        ):
            raise InvalidCallback("gateway signature does not verify")
        if not timestamp.isdigit() or abs(datetime.now(UTC).timestamp() - int(timestamp)) > _NOTICE_WINDOW_S:
            raise InvalidCallback("timestamp outside the accepted window")
        try:
            decoded = decode_json(body)
        except ValueError as exc:
            raise InvalidCallback(f"the {what} is not JSON") from exc
        if not isinstance(decoded, Mapping):
            raise InvalidCallback(f"the {what} is not a JSON object")
        return decoded

    # --- requests --------------------------------------------------------------------------------------------------

    def _settle_data(self, request: SettleRequest) -> dict[str, Any]:
        return {
            "psn_no": request.visit.insured.psn_no,
            "mdtrt_cert_type": request.cert_type.value,
            "mdtrt_cert_no": request.cert_no,
            "med_type": request.med_type,
            "medfee_sumamt": fen_to_yuan(request.total_fen),
            "psn_setlway": request.psn_setlway,
            "mdtrt_id": request.visit.mdtrt_id,
            "chrg_bchno": request.chrg_bchno,
            "insutype": request.visit.insured.insutype,
            "acct_used_flag": _flag(request.use_account),
        }

    @staticmethod
    def _checked_settlement(output: Mapping[str, Any], request: SettleRequest) -> Settlement:
        info = output.get("setlinfo")
        _ours(isinstance(info, Mapping), "no setlinfo")
        assert isinstance(info, Mapping)
        _ours(
            info.get("mdtrt_id") == request.visit.mdtrt_id and info.get("psn_no") == request.visit.insured.psn_no,
            "another visit",
        )
        settlement = _settlement(output)
        if settlement.split.total_fen != request.total_fen:
            raise ValueError(f"the answer settles {settlement.split.total_fen} fen, not {request.total_fen}")
        return settlement

    @staticmethod
    def _fee_detail(visit: InsuranceVisit, chrg_bchno: str, line: FeeLine) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "feedetl_sn": line.feedetl_sn,
            "mdtrt_id": visit.mdtrt_id,
            "psn_no": visit.insured.psn_no,
            "chrg_bchno": chrg_bchno,
            "rx_circ_flag": line.rx_circ_flag,
            "fee_ocur_time": f"{_local(line.fee_ocur_time):{_TIME}}",
            "med_list_codg": line.med_list_codg,
            "medins_list_codg": line.medins_list_codg,
            "det_item_fee_sumamt": fen_to_yuan(line.det_item_fee_sumamt_fen),
            "cnt": line.cnt,
            "pric": line.pric,
            "bilg_dept_codg": line.bilg_dept_codg,
            "bilg_dept_name": line.bilg_dept_name,
            "bilg_dr_codg": line.bilg_dr_codg,
            "bilg_dr_name": line.bilg_dr_name,
            "hosp_appr_flag": line.hosp_appr_flag,
        }
        optional = {"rxno": line.rxno, "tcmdrug_used_way": line.tcmdrug_used_way, "dise_codg": line.dise_codg}
        detail.update({field: value for field, value in optional.items() if value is not None})
        return detail

    def _order_query(self, query: MobileOrderQuery) -> dict[str, Any]:
        return {
            "payOrdId": query.order.pay_ord_id,
            "payToken": query.order.pay_token,
            "orgCodg": self._config.fixmedins_code,
            "idNo": query.id_no,
            "userName": query.user_name,
            "idType": query.id_type,
        }

    # --- transport -------------------------------------------------------------------------------------------------

    def _msgid(self, infno: str, key: tuple[str, datetime] | None, probe: int) -> str:
        if key is None:
            return message_id(self._config.fixmedins_code, datetime.now(UTC), next(self._sequence))
        idempotency_key, requested_at = key
        return message_id(self._config.fixmedins_code, requested_at, keyed_sequence(infno, idempotency_key, probe))

    async def _transact(
        self,
        infno: str,
        payload: Mapping[str, Any],
        read: Callable[[Mapping[str, Any], str], _T],
        *,
        key: tuple[str, datetime] | None = None,
        insured: InsuredRef | None = None,
        settling: bool = False,
    ) -> _T:
        """Send one transaction and read its `output` with `read(output, msgid)`.

        `key` (idempotency key, requested_at) makes the msgid deterministic; without it (reads) it is fresh. A msgid
        has 4 digits of sequence per second, so two messages can draw the same one, and the platform answers the later
        with the earlier's answer. `read` recognises such an answer (`_NotOurs`) and the transaction goes out again
        under the key's next msgid — deterministically, so a retried activity walks the same msgids and meets its own
        first answer. `settling` marks 2207/6202, whose unknown outcome raises `SettlementUnknown`, not a retry.
        """
        for probe in range(_PROBES):
            msgid = self._msgid(infno, key, probe)
            response = await self._post(infno, msgid, self._envelope(infno, msgid, insured, payload), settling)
            output = _output(infno, msgid, response.content, settling=settling)
            try:
                return read(output, msgid)
            except _NotOurs:
                continue
            except ValueError as exc:  # pydantic's ValidationError is a ValueError too
                raise _unknown(infno, msgid, settling, f"unreadable answer: {exc}") from exc
        raise AdapterError(f"{infno}: {_PROBES} msgids in a row were answered for other messages")

    def _envelope(self, infno: str, msgid: str, insured: InsuredRef | None, payload: Mapping[str, Any]) -> bytes:
        config = self._config
        envelope = {
            "infno": infno,
            "msgid": msgid,
            "mdtrtarea_admvs": config.mdtrtarea_admvs,
            "insuplc_admdvs": insured.insuplc_admdvs if insured else config.insuplc_admdvs,
            "recer_sys_code": config.recer_sys_code,
            "dev_no": config.dev_no,
            "dev_safe_info": config.dev_safe_info,
            "cainfo": config.cainfo,
            "signtype": config.signtype,
            "infver": config.infver,
            "opter_type": config.opter_type,
            "opter": config.opter,
            "opter_name": config.opter_name,
            "inf_time": f"{_local(datetime.now(UTC)):{_TIME}}",
            "fixmedins_code": config.fixmedins_code,
            "fixmedins_name": config.fixmedins_name,
            "sign_no": config.sign_no,
            "input": payload,
        }
        return encode_json(envelope).encode()

    async def _post(self, infno: str, msgid: str, body: bytes, settling: bool) -> httpx.Response:
        headers = {
            "Content-Type": "application/json;charset=utf-8",
            **_gateway_headers(self._config.paasid, self._config.secret.get_secret_value()),
        }
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Never sent: retrying cannot do anything twice, whatever the transaction.
            raise AdapterError(f"{infno} {msgid}: cannot reach the platform: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise _unknown(infno, msgid, settling, f"no answer: {exc!r}") from exc
        if response.status_code in (401, 403):
            raise AdapterRefusal("GATEWAY_AUTH", "医保网关鉴权失败，请核对 paasid 与密钥")
        if response.status_code >= 500:
            raise _unknown(infno, msgid, settling, f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise AdapterRefusal(f"HTTP_{response.status_code}", "医保网关拒绝了请求")
        return response

    async def _download(self, payload: Mapping[str, Any]) -> bytes:
        """9102: the answer is the file itself, or an envelope when the platform refuses."""
        for _ in range(_PROBES):
            msgid = self._msgid("9102", None, 0)
            response = await self._post("9102", msgid, self._envelope("9102", msgid, None, payload), False)
            if not response.headers.get("content-type", "").startswith("application/json"):
                return response.content
            # A refusal raises here; an envelope that is not a refusal answered another message with our msgid.
            _output("9102", msgid, response.content, settling=False)
        raise AdapterError(f"9102: {_PROBES} msgids in a row were answered for other messages")


def _unknown(infno: str, msgid: str, settling: bool, reason: str) -> Exception:
    if settling:
        return SettlementUnknown(infno, msgid, reason)
    return AdapterError(f"{infno} {msgid}: {reason}")


def _output(infno: str, msgid: str, content: bytes, *, settling: bool) -> Mapping[str, Any]:
    try:
        answer = decode_json(content)
    except ValueError as exc:
        raise _unknown(infno, msgid, settling, "the answer is not JSON") from exc
    if not isinstance(answer, Mapping) or "infcode" not in answer:
        raise _unknown(infno, msgid, settling, "the answer is not a platform envelope")
    if str(answer["infcode"]) != "0":
        raise AdapterRefusal(str(answer["infcode"]), str(answer.get("err_msg") or "医保平台拒绝了该交易"))
    output = answer.get("output") or {}
    if not isinstance(output, Mapping):
        raise _unknown(infno, msgid, settling, "output is not an object")
    return output


def _serial(infno: str, idempotency_key: str) -> str:
    """Our own business serial (orgBizSer, appRefdSn) for a step: the same on every retry."""
    return sm3_hex(f"{infno}:{idempotency_key}".encode())[:30].upper()


def _mobile_fee_detail(chrg_bchno: str, line: FeeLine) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "feedetlSn": line.feedetl_sn,
        "chrgBchno": chrg_bchno,
        "rxCircFlag": line.rx_circ_flag,
        "feeOcurTime": f"{_local(line.fee_ocur_time):{_TIME}}",
        "medListCodg": line.med_list_codg,
        "medinsListCodg": line.medins_list_codg,
        "detItemFeeSumamt": fen_to_yuan(line.det_item_fee_sumamt_fen),
        "cnt": line.cnt,
        "pric": line.pric,
        "bilgDeptCodg": line.bilg_dept_codg,
        "bilgDeptName": line.bilg_dept_name,
        "bilgDrCodg": line.bilg_dr_codg,
        "bilgDrName": line.bilg_dr_name,
        "hospApprFlag": line.hosp_appr_flag,
    }
    optional = {"rxno": line.rxno, "tcmdrugUsedWay": line.tcmdrug_used_way}
    detail.update({field: value for field, value in optional.items() if value is not None})
    return detail


def _zip(member: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, text.encode())
    return buffer.getvalue()


def _unzip_text(content: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        members = [name for name in archive.namelist() if name.endswith(".txt")]
        if len(members) != 1:
            raise ValueError("the result file must hold exactly one .txt")
        return archive.read(members[0]).decode()


def _detail_result(row: str) -> DailyCheckLineResult:
    fields = row.rstrip("\r").split("\t")
    if len(fields) < 2:
        raise ValueError(f"result line has {len(fields)} fields")
    memo = fields[2] if len(fields) > 2 and fields[2] else None
    return DailyCheckLineResult(setl_id=fields[0], outcome=_DETAIL_OUTCOMES[fields[1]], memo=memo)

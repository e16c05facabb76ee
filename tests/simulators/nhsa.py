"""A local stand-in for the national medical insurance platform (定点医药机构接口 over HTTP/JSON).

It checks what the real gateway and platform check — the x-tif headers, the envelope fields, the msgid format and its
institution prefix, the insured's 参保地 on calls about a person, fee totals against uploaded fee lines — keeps
persons, visits, fees, settlements and mobile orders in memory, splits with the shared rules of `split.py`, answers a
repeated msgid with its first answer, and injects faults on demand. For the mobile path it also plays the patient's
authorization page (`authorize`: a payAuthNo bound to the person, reported with gateway headers), and accepts a
payAuthNo on 6201/6202/6203 only from the person it was issued to. The faults:

- `stall`: perform the transaction, remember its answer, then hang past the client's timeout (the nightmare case of a
  2207 that settled while its answer was lost);
- `refuse`: answer infcode -1 with a message;
- `http_500`: the gateway fails before the platform sees the request;
- `corrupt`: perform the transaction, then answer with a fund amount one fen too high.

Its JSON codec and signature check are its own, so an adapter test exercises the protocol, not the adapter agreeing
with itself.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import itertools
import json
import re
import secrets
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from activities.adapters.insurance.split import DEFAULT_POLICY, Split, SplitPolicy, fen_to_yuan, split, yuan_to_fen

SERVICE_PATH = "/fsi/api/callFsiService/callService"
_LOCAL = ZoneInfo("Asia/Shanghai")
_TIME = "%Y-%m-%d %H:%M:%S"
_ENVELOPE_FIELDS = (
    "infno",
    "msgid",
    "mdtrtarea_admvs",
    "insuplc_admdvs",
    "recer_sys_code",
    "dev_no",
    "dev_safe_info",
    "cainfo",
    "signtype",
    "infver",
    "opter_type",
    "opter",
    "opter_name",
    "inf_time",
    "fixmedins_code",
    "fixmedins_name",
    "sign_no",
    "input",
)


class Refused(Exception):
    """The platform refuses the transaction (infcode -1, err_msg)."""


@dataclass
class Person:
    psn_no: str
    name: str
    certno: str
    insutype: str
    insuplc_admdvs: str
    balance_fen: int
    ec_token: str | None = None


@dataclass
class Visit:
    mdtrt_id: str
    psn_no: str
    ipt_otp_no: str
    insutype: str
    cancelled: bool = False


@dataclass
class Fee:
    feedetl_sn: str
    mdtrt_id: str
    chrg_bchno: str
    amount_fen: int
    eligible_fen: int
    setl_id: str | None = None


@dataclass
class SimSettlement:
    setl_id: str
    msgid: str
    mdtrt_id: str
    psn_no: str
    insutype: str
    clr_optins: str
    chrg_bchno: str
    shares: Split
    settled_at: datetime
    state: str = "active"  # or "cancelled" (2208), "reversed" (2601)


@dataclass
class MobileOrder:
    pay_ord_id: str
    pay_token: str
    med_org_ord: str
    mdtrt_id: str
    psn_no: str
    total_fen: int
    ord_stas: str = "0"
    shares: Split | None = None
    pay_msgid: str | None = None  # the 6202 that paid it, which 2601 may reverse


@dataclass
class Fault:
    infno: str
    kind: str
    message: str = "医保平台模拟拒绝"


@dataclass
class Answer:
    body: bytes
    media_type: str = "application/json"


def _encode(value: Any) -> str:
    """JSON whose Decimals are written as exact numbers, the way the platform writes 元."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(f"{json.dumps(key, ensure_ascii=False)}:{_encode(item)}" for key, item in value.items())
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _signature(timestamp: str, secret: str, nonce: str) -> str:
    return hashlib.sha256((timestamp + secret + nonce + timestamp).encode()).hexdigest()


def _yuan(fen: int) -> Decimal:
    return fen_to_yuan(fen)


def _now() -> datetime:
    return datetime.now(_LOCAL)


def _zip(member: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, text)
    return buffer.getvalue()


def _unzip(content: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return archive.read(archive.namelist()[0]).decode()


class NhsaSimulator:
    def __init__(
        self,
        *,
        fixmedins_code: str,
        paasid: str,
        secret: str,
        policy: SplitPolicy = DEFAULT_POLICY,
        stall_s: float = 5.0,
    ) -> None:
        self.fixmedins_code = fixmedins_code
        self.paasid = paasid
        self.secret = secret
        self.policy = policy
        self.stall_s = stall_s
        self.persons: dict[str, Person] = {}
        self.visits: dict[str, Visit] = {}
        self.fees: dict[tuple[str, str], Fee] = {}  # (mdtrt_id, feedetl_sn)
        self.settlements: dict[str, SimSettlement] = {}
        self.orders: dict[str, MobileOrder] = {}
        self.authorizations: dict[str, str] = {}  # payAuthNo → psn_no of the person who gave it
        self.files: dict[str, bytes] = {}
        self.received: list[dict[str, Any]] = []  # envelopes the platform processed, in order
        self.answered: dict[str, Answer] = {}  # msgid → first answer
        self.faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._release = asyncio.Event()
        self._handlers: dict[str, Callable[[dict[str, Any], str], dict[str, Any] | bytes]] = {
            "1101": self._person,
            "2201": self._register,
            "2202": self._unregister,
            "2204": self._upload_fees,
            "2205": self._cancel_fees,
            "2206": lambda envelope, msgid: self._settle(envelope, msgid, commit=False),
            "2207": lambda envelope, msgid: self._settle(envelope, msgid, commit=True),
            "2208": self._cancel_settlement,
            "2601": self._reverse,
            "3201": self._check_totals,
            "3202": self._check_details,
            "9101": self._upload_file,
            "9102": self._download_file,
            "6201": self._mobile_upload,
            "6202": self._mobile_pay,
            "6203": self._mobile_refund,
            "6301": self._mobile_query,
            "6401": self._mobile_revoke,
        }
        self.app = Starlette(routes=[Route(SERVICE_PATH, self._service, methods=["POST"])])

    # --- what tests use --------------------------------------------------------------------------------------------

    def add_person(
        self,
        *,
        name: str,
        certno: str,
        insutype: str = "310",
        balance_fen: int = 50_000,
        insuplc_admdvs: str = "110105",
        ec_token: str | None = None,
    ) -> Person:
        person = Person(
            psn_no=f"{insuplc_admdvs}{next(self._ids):014d}",
            name=name,
            certno=certno,
            insutype=insutype,
            insuplc_admdvs=insuplc_admdvs,
            balance_fen=balance_fen,
            ec_token=ec_token,
        )
        self.persons[person.psn_no] = person
        return person

    def fail_next(self, infno: str, kind: str, message: str = "医保平台模拟拒绝") -> None:
        if kind not in ("stall", "refuse", "http_500", "corrupt"):
            raise ValueError(f"unknown fault {kind!r}")
        self.faults.append(Fault(infno, kind, message))

    def active_settlements(self, mdtrt_id: str | None = None) -> list[SimSettlement]:
        return [
            item
            for item in self.settlements.values()
            if item.state == "active" and (mdtrt_id is None or item.mdtrt_id == mdtrt_id)
        ]

    def received_msgids(self, infno: str) -> list[str]:
        return [envelope["msgid"] for envelope in self.received if envelope["infno"] == infno]

    def authorize(self, person: Person, med_org_ord: str) -> tuple[dict[str, str], bytes]:
        """The patient authorizes paying the hospital's order `med_org_ord` with 医保 on the platform's authorization
        page: the platform issues a payAuthNo bound to them and reports it to the hospital, with gateway headers."""
        pay_auth_no = f"AUTH{next(self._ids):012d}{secrets.token_hex(4)}"
        self.authorizations[pay_auth_no] = person.psn_no
        body = {
            "medOrgOrd": med_org_ord,
            "payAuthNo": pay_auth_no,
            "userName": person.name,
            "idType": "01",
            "idNo": person.certno,
        }
        return self._gateway_headers(datetime.now(UTC)), _encode(body).encode()

    def notice(self, pay_ord_id: str, *, at: datetime | None = None) -> tuple[dict[str, str], bytes]:
        """The settlement notice (6302) the platform sends for a paid mobile order, with gateway headers."""
        order = self.orders[pay_ord_id]
        if order.shares is None:
            raise ValueError("order not paid")
        body = {
            "payOrdId": order.pay_ord_id,
            "medOrgOrd": order.med_org_ord,
            "callType": "02",
            "traceTime": f"{_now():%Y%m%d%H%M%S}",
            "setlType": "ALL",
            **self._mobile_amounts(order.shares),
            "revsToken": secrets.token_hex(16),
        }
        return self._gateway_headers(at or datetime.now(UTC)), _encode(body).encode()

    def _gateway_headers(self, at: datetime) -> dict[str, str]:
        timestamp = str(int(at.timestamp()))
        nonce = secrets.token_hex(8)
        return {
            "x-tif-paasid": self.paasid,
            "x-tif-timestamp": timestamp,
            "x-tif-nonce": nonce,
            "x-tif-signature": _signature(timestamp, self.secret, nonce),
        }

    def release(self) -> None:
        """Let stalled answers go (at teardown)."""
        self._release.set()

    # --- the gateway -----------------------------------------------------------------------------------------------

    async def _service(self, request: Request) -> Response:
        if not self._authentic(request.headers):
            return JSONResponse({"code": 401, "message": "gateway signature invalid"}, status_code=401)
        try:
            envelope = json.loads(await request.body(), parse_float=Decimal)
        except ValueError:
            return self._respond(self._envelope_answer(-1, "报文不是合法的JSON"))
        problem = self._envelope_problem(envelope)
        if problem:
            return self._respond(self._envelope_answer(-1, problem))
        msgid, infno = envelope["msgid"], envelope["infno"]
        if msgid in self.answered:
            return self._respond(self.answered[msgid])
        fault = next((item for item in self.faults if item.infno == infno), None)
        if fault is not None:
            self.faults.remove(fault)
            if fault.kind == "http_500":
                return Response("Internal Server Error", status_code=500)
        self.received.append(envelope)
        if fault is not None and fault.kind == "refuse":
            answer = self._envelope_answer(-1, fault.message)
        else:
            answer = self._perform(envelope, msgid, corrupt=fault is not None and fault.kind == "corrupt")
        self.answered[msgid] = answer
        if fault is not None and fault.kind == "stall":
            try:
                await asyncio.wait_for(self._release.wait(), self.stall_s)
            except TimeoutError:
                pass
        return self._respond(answer)

    def _authentic(self, headers: Mapping[str, str]) -> bool:
        timestamp = headers.get("x-tif-timestamp", "")
        nonce = headers.get("x-tif-nonce", "")
        if headers.get("x-tif-paasid") != self.paasid or not timestamp.isdigit() or not nonce:
            return False
        if abs(datetime.now(UTC).timestamp() - int(timestamp)) > 300:
            return False
        return headers.get("x-tif-signature", "") == _signature(timestamp, self.secret, nonce)

    def _envelope_problem(self, envelope: Any) -> str | None:
        if not isinstance(envelope, dict):
            return "报文不是JSON对象"
        missing = [name for name in _ENVELOPE_FIELDS if name not in envelope]
        if missing:
            return f"缺少报文字段：{', '.join(missing)}"
        if envelope["fixmedins_code"] != self.fixmedins_code:
            return "定点医药机构编号不符"
        matched = re.fullmatch(rf"{re.escape(self.fixmedins_code)}(\d{{14}})\d{{4}}", str(envelope["msgid"]))
        if matched is None:
            return "报文ID格式错误：应为机构编号12位+yyyyMMddHHmmss+4位序号"
        try:
            datetime.strptime(matched.group(1), "%Y%m%d%H%M%S")
            datetime.strptime(str(envelope["inf_time"]), _TIME)
        except ValueError:
            return "报文时间格式错误"
        if not re.fullmatch(r"\d{6}", str(envelope["mdtrtarea_admvs"])):
            return "就医地医保区划格式错误"
        if envelope["infno"] not in self._handlers:
            return f"不支持的交易编号 {envelope['infno']}"
        if not isinstance(envelope["input"], dict):
            return "input 不是JSON对象"
        person = self.persons.get(self._psn_no(envelope["input"]) or "")
        if person is not None and envelope["insuplc_admdvs"] != person.insuplc_admdvs:
            return "参保地医保区划与人员不符"
        return None

    @staticmethod
    def _psn_no(payload: dict[str, Any]) -> str | None:
        data = payload.get("data") or {}
        details = payload.get("feedetail") or [{}]
        return data.get("psn_no") or data.get("psnNo") or details[0].get("psn_no")

    def _perform(self, envelope: dict[str, Any], msgid: str, *, corrupt: bool) -> Answer:
        try:
            output = self._handlers[envelope["infno"]](envelope["input"], msgid)
        except Refused as refusal:
            return self._envelope_answer(-1, str(refusal))
        if isinstance(output, bytes):
            return Answer(output, "application/octet-stream")
        if corrupt and "setlinfo" in output:
            info = output["setlinfo"]
            info["fund_pay_sumamt"] = info["fund_pay_sumamt"] + Decimal("0.01")
        return self._envelope_answer(0, "", output)

    def _envelope_answer(self, infcode: int, err_msg: str, output: dict[str, Any] | None = None) -> Answer:
        now = _now()
        answer = {
            "infcode": infcode,
            "inf_refmsgid": f"110000{now:%Y%m%d%H%M%S}{next(self._ids):010d}",
            "refmsg_time": f"{now:%Y%m%d%H%M%S%f}"[:17],
            "respond_time": f"{now:%Y%m%d%H%M%S%f}"[:17],
            "err_msg": err_msg,
            "output": output or {},
        }
        return Answer(_encode(answer).encode())

    @staticmethod
    def _respond(answer: Answer) -> Response:
        return Response(answer.body, media_type=answer.media_type)

    # --- 1101 / 2201 / 2202 ----------------------------------------------------------------------------------------

    def _person(self, payload: dict[str, Any], msgid: str) -> dict[str, Any]:
        data = payload["data"]
        cert_type, cert_no = data.get("mdtrt_cert_type"), data.get("mdtrt_cert_no")
        if cert_type == "01":
            found = [item for item in self.persons.values() if item.ec_token and item.ec_token == cert_no]
        elif cert_type in ("02", "03"):
            found = [item for item in self.persons.values() if item.certno == cert_no]
        else:
            raise Refused("就诊凭证类型错误")
        if not found:
            raise Refused("未查询到人员参保信息")
        person = found[0]
        return {
            "baseinfo": {
                "psn_no": person.psn_no,
                "psn_cert_type": "01",
                "certno": person.certno,
                "psn_name": person.name,
                "gend": "1",
                "naty": "01",
                "brdy": f"{person.certno[6:10]}-{person.certno[10:12]}-{person.certno[12:14]}",
                "age": Decimal("40.5"),
            },
            "insuinfo": [
                {
                    "balc": _yuan(person.balance_fen),
                    "insutype": person.insutype,
                    "psn_type": "11",
                    "psn_insu_stas": "1",
                    "psn_insu_date": "2010-01-01",
                    "paus_insu_date": None,
                    "cvlserv_flag": "0",
                    "insuplc_admdvs": person.insuplc_admdvs,
                    "emp_name": "模拟单位",
                }
            ],
            "idetinfo": [],
        }

    def _person_of(self, psn_no: Any) -> Person:
        person = self.persons.get(str(psn_no))
        if person is None:
            raise Refused("人员编号不存在")
        return person

    def _visit_of(self, mdtrt_id: Any, psn_no: Any) -> Visit:
        visit = self.visits.get(str(mdtrt_id))
        if visit is None or visit.psn_no != psn_no:
            raise Refused("就诊信息不存在")
        if visit.cancelled:
            raise Refused("就诊已撤销")
        return visit

    def _register(self, payload: dict[str, Any], msgid: str) -> dict[str, Any]:
        data = payload["data"]
        person = self._person_of(data.get("psn_no"))
        if data.get("insutype") != person.insutype:
            raise Refused("险种类型与参保信息不符")
        if data.get("mdtrt_cert_no") not in (person.certno, person.ec_token):
            raise Refused("就诊凭证与人员不符")
        for name in ("ipt_otp_no", "atddr_no", "dr_name", "dept_code", "dept_name", "caty", "begntime"):
            if not data.get(name):
                raise Refused(f"缺少字段 {name}")
        visit = Visit(
            mdtrt_id=f"{person.insuplc_admdvs}MD{next(self._ids):012d}",
            psn_no=person.psn_no,
            ipt_otp_no=data["ipt_otp_no"],
            insutype=person.insutype,
        )
        self.visits[visit.mdtrt_id] = visit
        return {"data": {"mdtrt_id": visit.mdtrt_id, "psn_no": person.psn_no, "ipt_otp_no": visit.ipt_otp_no}}

    def _unregister(self, payload: dict[str, Any], msgid: str) -> dict[str, Any]:
        data = payload["data"]
        visit = self._visit_of(data.get("mdtrt_id"), data.get("psn_no"))
        if self.active_settlements(visit.mdtrt_id):
            raise Refused("该就诊存在有效结算，不能撤销挂号")
        visit.cancelled = True
        return {}

    # --- 2204 / 2205 -----------------------------------------------------------------------------------------------

    def _upload_fees(self, payload: dict[str, Any], msgid: str) -> dict[str, Any]:
        details = payload.get("feedetail")
        if not isinstance(details, list) or not details:
            raise Refused("费用明细为空")
        added: list[Fee] = []
        results = []
        for detail in details:
            visit = self._visit_of(detail.get("mdtrt_id"), detail.get("psn_no"))
            sn = str(detail.get("feedetl_sn") or "")
            if not sn or (visit.mdtrt_id, sn) in self.fees or any(fee.feedetl_sn == sn for fee in added):
                raise Refused(f"费用明细流水号 {sn} 为空或重复")
            amount = yuan_to_fen(detail["det_item_fee_sumamt"])
            expected = (Decimal(str(detail["pric"])) * Decimal(str(detail["cnt"])) * 100).quantize(
                Decimal(1), rounding=ROUND_HALF_UP
            )
            if amount != expected:
                raise Refused(f"明细 {sn} 金额与单价×数量不符")
            # Catalogue items coded ZF… are outside the policy scope (全自费) in this simulator.
            own = amount if str(detail.get("med_list_codg", "")).startswith("ZF") else 0
            added.append(Fee(sn, visit.mdtrt_id, str(detail["chrg_bchno"]), amount, amount - own))
            results.append(
                {
                    "feedetl_sn": sn,
                    "det_item_fee_sumamt": _yuan(amount),
                    "cnt": detail["cnt"],
                    "pric": detail["pric"],
                    "pric_uplmt_amt": detail["pric"],
                    "selfpay_prop": Decimal("1.00") if own else Decimal("0.00"),
                    "fulamt_ownpay_amt": _yuan(own),
                    "overlmt_amt": Decimal("0.00"),
                    "preselfpay_amt": Decimal("0.00"),
                    "inscp_scp_amt": _yuan(amount - own),
                    "chrgitm_lv": "03" if own else "01",
                    "med_chrgitm_type": "09",
                }
            )
        for fee in added:
            self.fees[(fee.mdtrt_id, fee.feedetl_sn)] = fee
        return {"result": results}

    def _cancel_fees(self, payload: dict[str, Any], msgid: str) -> dict[str, Any]:
        data = payload["data"]
        visit = self._visit_of(data.get("mdtrt_id"), data.get("psn_no"))
        batch = data.get("chrg_bchno")
        chosen = [
            key
            for key, fee in self.fees.items()
            if fee.mdtrt_id == visit.mdtrt_id and batch in ("0000", fee.chrg_bchno)
        ]
        if any(self.fees[key].setl_id for key in chosen):
            raise Refused("费用明细已结算，不能撤销")
        for key in chosen:
            del self.fees[key]
        return {}

    # --- 2206 / 2207 / 2208 / 2601 ---------------------------------------------------------------------------------

    def _settle(self, payload: dict[str, Any], msgid: str, *, commit: bool) -> dict[str, Any]:
        data = payload["data"]
        person = self._person_of(data.get("psn_no"))
        visit = self._visit_of(data.get("mdtrt_id"), person.psn_no)
        if data.get("mdtrt_cert_no") not in (person.certno, person.ec_token):
            raise Refused("就诊凭证与人员不符")
        if data.get("insutype") != person.insutype:
            raise Refused("险种类型与参保信息不符")
        fees = [
            fee
            for fee in self.fees.values()
            if fee.mdtrt_id == visit.mdtrt_id and fee.chrg_bchno == data.get("chrg_bchno") and fee.setl_id is None
        ]
        total = sum(fee.amount_fen for fee in fees)
        if not fees or yuan_to_fen(data["medfee_sumamt"]) != total:
            raise Refused("医疗费总额与未结算费用明细不符")
        shares = split(
            total,
            self.policy.rule(person.insutype),
            account_balance_fen=person.balance_fen,
            use_account=data.get("acct_used_flag") == "1",
            eligible_fen=sum(fee.eligible_fen for fee in fees),
        )
        setl_id = None
        if commit:
            setl_id = f"{person.insuplc_admdvs}ST{next(self._ids):012d}"
            person.balance_fen -= shares.account_fen
            for fee in fees:
                fee.setl_id = setl_id
            self.settlements[setl_id] = SimSettlement(
                setl_id=setl_id,
                msgid=msgid,
                mdtrt_id=visit.mdtrt_id,
                psn_no=person.psn_no,
                insutype=person.insutype,
                clr_optins=person.insuplc_admdvs,
                chrg_bchno=str(data["chrg_bchno"]),
                shares=shares,
                settled_at=_now(),
            )
        own = total - sum(fee.eligible_fen for fee in fees)
        return self._settlement_output(person, visit, data, shares, setl_id, msgid, own, sign=1)

    def _settlement_output(
        self,
        person: Person,
        visit: Visit,
        data: Mapping[str, Any],
        shares: Split,
        setl_id: str | None,
        msgid: str,
        own_fen: int,
        *,
        sign: int,
    ) -> dict[str, Any]:
        def money(fen: int) -> Decimal:
            return _yuan(sign * fen)

        info = {
            "mdtrt_id": visit.mdtrt_id,
            "setl_id": setl_id,
            "psn_no": person.psn_no,
            "psn_name": person.name,
            "psn_cert_type": "01",
            "certno": person.certno,
            "insutype": person.insutype,
            "psn_type": "11",
            "cvlserv_flag": "0",
            "setl_time": f"{_now():{_TIME}}",
            "mdtrt_cert_type": data.get("mdtrt_cert_type", "02"),
            "med_type": data.get("med_type", "11"),
            "medfee_sumamt": money(shares.total_fen),
            "fulamt_ownpay_amt": money(own_fen),
            "overlmt_selfpay": money(0),
            "preselfpay_amt": money(0),
            "inscp_scp_amt": money(shares.total_fen - own_fen),
            "act_pay_dedc": money(shares.deductible_fen),
            "hifp_pay": money(shares.fund_fen),
            "pool_prop_selfpay": self.policy.rule(person.insutype).fund_ratio,
            "cvlserv_pay": money(0),
            "hifes_pay": money(0),
            "hifmi_pay": money(0),
            "hifob_pay": money(0),
            "maf_pay": money(0),
            "oth_pay": money(0),
            "fund_pay_sumamt": money(shares.fund_fen),
            "psn_part_amt": money(shares.account_fen + shares.cash_fen),
            "acct_pay": money(shares.account_fen),
            "psn_cash_pay": money(shares.cash_fen),
            "hosp_part_amt": money(0),
            "balc": _yuan(person.balance_fen),
            "acct_mulaid_pay": money(0),
            "medins_setl_id": msgid,
            "clr_optins": person.insuplc_admdvs,
            "clr_way": "1",
            "clr_type": "11",
        }
        detail = {
            "fund_pay_type": "310100",
            "inscp_scp_amt": money(shares.total_fen - own_fen),
            "crt_payb_lmt_amt": None,
            "fund_payamt": money(shares.fund_fen),
            "fund_pay_type_name": "职工基本医疗保险统筹基金",
            "setl_proc_info": None,
        }
        return {"setlinfo": info, "setldetail": [detail] if shares.fund_fen else []}

    def _undo(self, settlement: SimSettlement, state: str) -> None:
        settlement.state = state
        self.persons[settlement.psn_no].balance_fen += settlement.shares.account_fen
        for fee in self.fees.values():
            if fee.setl_id == settlement.setl_id:
                fee.setl_id = None

    def _cancel_settlement(self, payload: dict[str, Any], msgid: str) -> dict[str, Any]:
        data = payload["data"]
        settlement = self.settlements.get(str(data.get("setl_id")))
        if settlement is None or settlement.mdtrt_id != data.get("mdtrt_id") or settlement.psn_no != data.get("psn_no"):
            raise Refused("结算信息不存在")
        if settlement.state != "active":
            raise Refused("该结算已撤销或已冲正")
        self._undo(settlement, "cancelled")
        person, visit = self.persons[settlement.psn_no], self.visits[settlement.mdtrt_id]
        reversing_id = f"{person.insuplc_admdvs}ST{next(self._ids):012d}"
        return self._settlement_output(person, visit, data, settlement.shares, reversing_id, msgid, 0, sign=-1)

    def _reverse(self, payload: dict[str, Any], msgid: str) -> dict[str, Any]:
        data = payload["data"]
        self._person_of(data.get("psn_no"))
        if data.get("oinfno") not in ("2207", "6202"):
            raise Refused(f"交易 {data.get('oinfno')} 不允许冲正")
        original = str(data.get("omsgid") or "")
        for settlement in self.settlements.values():
            if settlement.msgid == original and settlement.state == "active":
                self._undo(settlement, "reversed")
        for order in self.orders.values():
            if order.pay_msgid == original and order.ord_stas == "4":
                self._refund_order(order)
        # A message that never committed reverses to nothing, and says so with success.
        return {}

    # --- 3201 / 3202 / 9101 / 9102 ---------------------------------------------------------------------------------

    def _in_period(self, optins: Any, begin: Any, end: Any) -> list[SimSettlement]:
        first, last = date.fromisoformat(str(begin)), date.fromisoformat(str(end))
        return [
            item
            for item in self.active_settlements()
            if item.clr_optins == optins and first <= item.settled_at.date() <= last
        ]

    def _check_totals(self, payload: dict[str, Any], msgid: str) -> dict[str, Any]:
        data = payload["data"]
        settled = [
            item
            for item in self._in_period(data["setl_optins"], data["stmt_begndate"], data["stmt_enddate"])
            if item.insutype == data["insutype"]
        ]
        ours = (
            sum(item.shares.total_fen for item in settled),
            sum(item.shares.fund_fen for item in settled),
            sum(item.shares.account_fen for item in settled),
            len(settled),
        )
        theirs = (
            yuan_to_fen(data["medfee_sumamt"]),
            yuan_to_fen(data["fund_pay_sumamt"]),
            yuan_to_fen(data["acct_pay"]),
            int(data["fixmedins_setl_cnt"]),
        )
        balanced = ours == theirs
        return {
            "stmtinfo": {
                "setl_optins": data["setl_optins"],
                "stmt_rslt": "0" if balanced else "1",
                "stmt_rslt_dscr": "对账平" if balanced else f"对账不平：中心 {ours[3]} 笔，医院 {theirs[3]} 笔",
            }
        }

    def _upload_file(self, payload: dict[str, Any], msgid: str) -> dict[str, Any]:
        upload = payload.get("fsUploadIn") or {}
        if upload.get("fixmedins_code") != self.fixmedins_code or not upload.get("filename"):
            raise Refused("文件上传参数错误")
        number = f"F{next(self._ids):015d}"
        self.files[number] = base64.b64decode(upload["in"])
        return {"file_qury_no": number, "filename": upload["filename"], "dld_endtime": self._deadline()}

    @staticmethod
    def _deadline() -> str:
        return f"{_now() + timedelta(days=1):{_TIME}}"

    def _check_details(self, payload: dict[str, Any], msgid: str) -> dict[str, Any]:
        data = payload["data"]
        uploaded = self.files.get(str(data.get("file_qury_no")))
        if uploaded is None:
            raise Refused("文件查询号不存在")
        lines = [row.split("\t") for row in _unzip(uploaded).splitlines() if row.strip()]
        active = [row for row in lines if row[6] == "0"]
        sums = (
            sum(yuan_to_fen(row[3]) for row in active),
            sum(yuan_to_fen(row[4]) for row in active),
            sum(yuan_to_fen(row[3]) - yuan_to_fen(row[4]) - yuan_to_fen(row[5]) for row in active),
            len(active),
        )
        declared = (
            yuan_to_fen(data["medfee_sumamt"]),
            yuan_to_fen(data["fund_pay_sumamt"]),
            yuan_to_fen(data["cash_payamt"]),
            int(data["fixmedins_setl_cnt"]),
        )
        if sums != declared:
            raise Refused("对账汇总数与明细文件不符")
        platform = {
            item.setl_id: item
            for item in self._in_period(data["setl_optins"], data["stmt_begndate"], data["stmt_enddate"])
        }
        results = []
        for row in active:
            item = platform.pop(row[0], None)
            if item is None:
                results.append(f"{row[0]}\t2\t中心无此结算")
            elif (item.shares.total_fen, item.shares.fund_fen, item.shares.account_fen) != tuple(
                yuan_to_fen(value) for value in row[3:6]
            ):
                results.append(f"{row[0]}\t1\t金额不符")
            else:
                results.append(f"{row[0]}\t0\t")
        results += [f"{setl_id}\t3\t医院无此结算" for setl_id in platform]
        number = f"F{next(self._ids):015d}"
        self.files[number] = _zip(f"{number}.txt", "\n".join(results))
        return {"fileinfo": {"file_qury_no": number, "filename": f"{number}.zip", "dld_endtime": self._deadline()}}

    def _download_file(self, payload: dict[str, Any], msgid: str) -> bytes:
        download = payload.get("fsDownloadIn") or {}
        content = self.files.get(str(download.get("file_qury_no")))
        if content is None or download.get("fixmedins_code") != self.fixmedins_code:
            raise Refused("文件不存在")
        return content

    # --- 6201 / 6202 / 6203 / 6301 / 6401 --------------------------------------------------------------------------

    @staticmethod
    def _mobile_amounts(shares: Split) -> dict[str, Decimal]:
        return {
            "feeSumamt": _yuan(shares.total_fen),
            "ownPayAmt": _yuan(shares.cash_fen),
            "psnAcctPay": _yuan(shares.account_fen),
            "fundPay": _yuan(shares.fund_fen),
            "hospPartAmt": _yuan(0),
        }

    def _authorized(self, pay_auth_no: Any, psn_no: str) -> None:
        """A payAuthNo is the consent of the person it was issued to, for nobody else."""
        if self.authorizations.get(str(pay_auth_no or "")) != psn_no:
            raise Refused("支付授权码无效或不属于该参保人")

    def _order_of(self, data: Mapping[str, Any]) -> MobileOrder:
        order = self.orders.get(str(data.get("payOrdId")))
        if order is None or order.pay_token != data.get("payToken"):
            raise Refused("支付订单不存在或支付令牌错误")
        return order

    def _mobile_upload(self, payload: dict[str, Any], msgid: str) -> dict[str, Any]:
        data = payload["data"]
        person = self._person_of(data.get("psnNo"))
        visit = self._visit_of(data.get("mdtrtId"), person.psn_no)
        if data.get("orgCodg") != self.fixmedins_code or not data.get("payAuthNo"):
            raise Refused("机构编码或支付授权码错误")
        self._authorized(data.get("payAuthNo"), person.psn_no)
        if data.get("idNo") != person.certno or data.get("userName") != person.name:
            raise Refused("参保人身份信息不符")
        if any(order.med_org_ord == data.get("medOrgOrd") for order in self.orders.values()):
            raise Refused("医疗机构订单号重复")
        total = yuan_to_fen(data["medfeeSumamt"])
        if sum(yuan_to_fen(line["detItemFeeSumamt"]) for line in data.get("feedetailList") or []) != total:
            raise Refused("费用明细合计与医疗费总额不符")
        order = MobileOrder(
            pay_ord_id=f"ORD{next(self._ids):017d}",
            pay_token=secrets.token_hex(16),
            med_org_ord=str(data["medOrgOrd"]),
            mdtrt_id=visit.mdtrt_id,
            psn_no=person.psn_no,
            total_fen=total,
        )
        self.orders[order.pay_ord_id] = order
        return {"payOrdId": order.pay_ord_id, "payToken": order.pay_token}

    def _mobile_pay(self, payload: dict[str, Any], msgid: str) -> dict[str, Any]:
        data = payload["data"]
        order = self._order_of(data)
        if order.ord_stas != "0":
            raise Refused("订单状态不允许支付")
        if data.get("mdtrtId") != order.mdtrt_id or not data.get("payAuthNo") or not data.get("orgBizSer"):
            raise Refused("下单参数错误")
        self._authorized(data.get("payAuthNo"), order.psn_no)
        person = self.persons[order.psn_no]
        order.shares = split(
            order.total_fen,
            self.policy.rule(person.insutype),
            account_balance_fen=person.balance_fen,
            use_account=data.get("acctUsedFlag") == "1",
        )
        person.balance_fen -= order.shares.account_fen
        order.ord_stas, order.pay_msgid = "4", msgid
        return {"payOrdId": order.pay_ord_id, "ordStas": order.ord_stas, **self._mobile_amounts(order.shares)}

    def _refund_order(self, order: MobileOrder) -> None:
        assert order.shares is not None
        self.persons[order.psn_no].balance_fen += order.shares.account_fen
        order.ord_stas = "7"

    def _mobile_refund(self, payload: dict[str, Any], msgid: str) -> dict[str, Any]:
        data = payload["data"]
        order = self.orders.get(str(data.get("payOrdId")))
        if order is None or order.shares is None or order.ord_stas != "4":
            raise Refused("订单未支付或已退费")
        if bool(data.get("payAuthNo")) == bool(data.get("ecToken")):
            raise Refused("payAuthNo 与 ecToken 须且仅须提供一个")
        if data.get("payAuthNo"):
            self._authorized(data.get("payAuthNo"), order.psn_no)
        if not re.fullmatch(r"\d{14}", str(data.get("appRefdTime"))):
            raise Refused("退费时间格式错误")
        wanted = tuple(
            yuan_to_fen(data[name]) for name in ("totlRefdAmt", "fundRefdAmt", "psnAcctRefdAmt", "cashRefdAmt")
        )
        paid = (order.shares.total_fen, order.shares.fund_fen, order.shares.account_fen, order.shares.cash_fen)
        if data.get("refdType") != "ALL" or wanted != paid:
            raise Refused("仅支持全额退费，且各项金额须与原结算一致")
        self._refund_order(order)
        return {
            "payOrdId": order.pay_ord_id,
            "appRefdSn": data["appRefdSn"],
            "trdSn": f"TRD{next(self._ids):012d}",
            "refStatus": "SUCC",
            "refdTime": f"{_now():%Y%m%d%H%M%S}",
        }

    def _mobile_query(self, payload: dict[str, Any], msgid: str) -> dict[str, Any]:
        data = payload["data"]
        order = self._order_of(data)
        if data.get("idNo") != self.persons[order.psn_no].certno:
            raise Refused("参保人身份信息不符")
        answer: dict[str, Any] = {
            "payOrdId": order.pay_ord_id,
            "ordStas": order.ord_stas,
            "medOrgOrd": order.med_org_ord,
        }
        if order.shares is not None:
            answer.update(self._mobile_amounts(order.shares), setlType="ALL", callType="02")
        return answer

    def _mobile_revoke(self, payload: dict[str, Any], msgid: str) -> dict[str, Any]:
        data = payload["data"]
        order = self._order_of(data)
        if order.ord_stas != "0":
            raise Refused("订单已支付，不能撤销")
        order.ord_stas = "12"
        return {"success": True, "message": "撤销成功"}

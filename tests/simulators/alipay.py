"""An Alipay OpenAPI gateway (`gateway.do`, public-key mode, RSA2) for tests, with the payer's side and faults.

`await sim.start()` serves it with uvicorn on 127.0.0.1 on a free port inside the running event loop;
`sim.gateway_url` is its gateway; `await sim.stop()` ends it. It has its own RSA key (the "Alipay" key) and knows the
app's public key. It behaves as Alipay does:

- every request's common parameters are checked (app_id, sign_type RSA2, charset, timestamp within 15 minutes) and
  its signature verified: SHA256withRSA over the non-empty parameters but `sign`, sorted, `k=v&…`. A bad signature
  answers 40002 isv.invalid-signature, unsigned, showing the string the gateway verified;
- every other answer is `{"<method>_response":{…},"sign":"…"}`, signed over the exact text of the response member;
- a precreated order exists only once the payer opens it: before that, query, close and refund answer
  ACQ.TRADE_NOT_EXIST. Closing it then still locks its QR code, so the payer can no longer pay it;
- the same out_trade_no precreated again answers the same QR code, with another amount ACQ.CONTEXT_INCONSISTENT;
  a paid one ACQ.TRADE_HAS_SUCCESS, a closed one ACQ.TRADE_HAS_CLOSE;
- a refund repeated with its out_request_no and amount answers again with fund_change N and moves no money, with
  another amount ACQ.DISCORDANT_REPEAT_REQUEST; refunds never add up to more than was paid
  (ACQ.REFUND_AMT_NOT_EQUAL_TOTAL); a trade refunded in full becomes TRADE_CLOSED;
- async notifies are form bodies signed over their parameters but `sign` and `sign_type`;
- the trade bill of a day is a zip of GBK CSV files (with GBK file names) behind a download URL valid 30 seconds.

Each request is handled by synchronous code between awaits, so it is atomic on the event loop, as Alipay's own
serialisation makes it. Bills are served for any day at once (the real one is ready the next morning).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import html
import io
import json
import re
import secrets
import string
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from activities.adapters.errors import AdapterRefusal
from tests.simulators.serving import serve

BEIJING = ZoneInfo("Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
REQUEST_WINDOW = timedelta(minutes=15)
BILL_URL_TTL_S = 30
BUYER_ID = "2088102177846880"
BUYER_LOGON_ID = "138****8888"
# Fees at 0.6%, in whole fen rounded half up, as Alipay settles them per trade.
FEE_PER_MILLE = 6
_MESSAGES = {
    "10000": "Success",
    "20000": "Service Currently Unavailable",
    "40001": "Missing Required Arguments",
    "40002": "Invalid Arguments",
    "40004": "Business Failed",
}
_REQUIRED = (
    ("method", "isv.missing-method"),
    ("app_id", "isv.missing-app-id"),
    ("sign_type", "isv.missing-signature-type"),
    ("sign", "isv.missing-signature"),
    ("timestamp", "isv.missing-timestamp"),
    ("version", "isv.missing-version"),
)
_AMOUNT = re.compile(r"\d+(\.\d{1,2})?")
BILL_COLUMNS = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,"
    "商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,"
    "商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注"
)
_DASHES = "-" * 41


class _Failure(Exception):
    """An answer other than success; unsigned when the gateway stops before it would sign."""

    def __init__(self, code: str, sub_code: str, sub_msg: str, *, signed: bool = True, **extra: str) -> None:
        super().__init__(f"{code} {sub_code}: {sub_msg}")
        self.fields: dict[str, Any] = {"code": code, "msg": _MESSAGES[code], "sub_code": sub_code, "sub_msg": sub_msg}
        self.fields.update(extra)
        self.signed = signed


@dataclass
class _Refund:
    out_request_no: str
    amount_fen: int
    at: datetime


@dataclass
class _Trade:
    out_trade_no: str
    total_fen: int
    subject: str
    time_expire: datetime | None
    qr_code: str
    # UNOPENED (precreated, nobody scanned), LOCKED (closed while unopened), then Alipay's own: WAIT_BUYER_PAY,
    # TRADE_SUCCESS, TRADE_CLOSED.
    state: str = "UNOPENED"
    trade_no: str = ""
    opened_at: datetime | None = None
    paid_at: datetime | None = None
    charges: int = 0
    refunds: dict[str, _Refund] = field(default_factory=dict)

    @property
    def refunded_fen(self) -> int:
        return sum(refund.amount_fen for refund in self.refunds.values())


@dataclass
class _BillEntry:
    trade: _Trade
    at: datetime
    refund: _Refund | None = None


@dataclass
class _Fault:
    status: int = 0
    delay_s: float = 0.0
    answer: tuple[str, str, str] | None = None  # (code, sub_code, sub_msg) answered instead of doing the call
    tamper: bool = False


def _now() -> datetime:
    return datetime.now(UTC)


def _beijing(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime(TIME_FORMAT)


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _fee(fen: int) -> int:
    return (fen * FEE_PER_MILLE + 500) // 1000


def _digits(n: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(n))


def _canonical(params: Mapping[str, str], *, leave_out: tuple[str, ...], skip_empty: bool) -> str:
    return "&".join(
        f"{name}={params[name]}"
        for name in sorted(params)
        if name not in leave_out and not (skip_empty and params[name] == "")
    )


class _GbkName(zipfile.ZipInfo):
    """A zip member named in GBK without the UTF-8 flag, as Alipay's bill archives are (Python would write UTF-8)."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode("gbk"), self.flag_bits


class AlipaySimulator:
    """Alipay's gateway and the payer's phone. Implements the payment contract's `PaymentSimulator`."""

    def __init__(self, *, app_id: str, app_public_key: rsa.RSAPublicKey, seller_id: str) -> None:
        self.app_id = app_id
        self.app_public_key = app_public_key
        self.seller_id = seller_id
        self.alipay_private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.base_url = ""
        # The parameters of every API call received, oldest first.
        self.received: list[dict[str, str]] = []
        self._trades: dict[str, _Trade] = {}
        self._entries: list[_BillEntry] = []
        self._bill_files: dict[str, tuple[bytes, float]] = {}
        self._faults: list[_Fault] = []
        self._serving = AsyncExitStack()
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "alipay.trade.precreate": self._precreate,
            "alipay.trade.query": self._query,
            "alipay.trade.close": self._close,
            "alipay.trade.refund": self._refund,
            "alipay.trade.fastpay.refund.query": self._refund_query,
            "alipay.data.dataservice.bill.downloadurl.query": self._bill_url,
        }
        self.app = Starlette(
            routes=[
                Route("/gateway.do", self._gateway, methods=["GET", "POST"]),
                Route("/downloadBillFile.resource", self._download, methods=["GET"]),
            ]
        )

    @property
    def gateway_url(self) -> str:
        return f"{self.base_url}/gateway.do"

    def alipay_public_key_pem(self) -> bytes:
        return self.alipay_private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    # --- serving ---------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.base_url = await self._serving.enter_async_context(serve(self.app))

    async def stop(self) -> None:
        await self._serving.aclose()

    # --- fault injection (API calls only; the cashier page and bill downloads are not affected) --------------------

    def fail_next(self, n: int = 1, *, status: int = 500) -> None:
        """The next `n` API calls answer HTTP `status` without doing anything."""
        self._faults.extend(_Fault(status=status) for _ in range(n))

    def unavailable_next(self, n: int = 1) -> None:
        """The next `n` API calls answer 20000 isp.unknow-error (signed) without doing anything."""
        self._faults.extend(_Fault(answer=("20000", "isp.unknow-error", "系统繁忙")) for _ in range(n))

    def refuse_next(self, n: int = 1, *, sub_code: str, sub_msg: str) -> None:
        """The next `n` API calls answer 40004 `sub_code` (signed) without doing anything."""
        self._faults.extend(_Fault(answer=("40004", sub_code, sub_msg)) for _ in range(n))

    def delay_next(self, n: int = 1, *, seconds: float) -> None:
        """The next `n` API calls wait `seconds` and are then performed (a client that gave up meanwhile never hears
        the answer, as with a real network)."""
        self._faults.extend(_Fault(delay_s=seconds) for _ in range(n))

    def tamper_next(self, n: int = 1) -> None:
        """The next `n` API calls are performed, but their answer is altered after it was signed."""
        self._faults.extend(_Fault(tamper=True) for _ in range(n))

    def clear_faults(self) -> None:
        self._faults.clear()

    # --- the payer's side and Alipay's notifies --------------------------------------------------------------------

    def scan(self, out_trade_no: str) -> None:
        """The payer opens the order (scans the QR code) and does not pay yet: the trade now exists, WAIT_BUYER_PAY."""
        self._open(self._payable(out_trade_no))

    async def simulate_payment(
        self, out_trade_no: str, *, signed_at: datetime | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The payer pays (charged at most once); returns the TRADE_SUCCESS notify, sent as of `signed_at`. A paid
        order answers a fresh notify, as a redelivery would."""
        trade = self._trades.get(out_trade_no)
        if trade is None or trade.paid_at is None:
            trade = self._payable(out_trade_no)
            self._open(trade)
            trade.state, trade.paid_at = "TRADE_SUCCESS", _now()
            trade.charges += 1
            self._entries.append(_BillEntry(trade, trade.paid_at))
        return self.notify(out_trade_no, signed_at=signed_at)

    async def charges(self, out_trade_no: str) -> int:
        trade = self._trades.get(out_trade_no)
        return 0 if trade is None else trade.charges

    def refunded_fen(self, out_trade_no: str) -> int:
        """How much of the payment went back to the payer (never more than was paid)."""
        trade = self._trades.get(out_trade_no)
        return 0 if trade is None else trade.refunded_fen

    def paid_at(self, out_trade_no: str) -> datetime | None:
        trade = self._trades.get(out_trade_no)
        return None if trade is None else trade.paid_at

    def notify(
        self, out_trade_no: str, *, signed_at: datetime | None = None, **changes: str
    ) -> tuple[dict[str, str], bytes]:
        """The async notify of the trade's current state, with `changes` applied before Alipay signs it."""
        trade = self._trades[out_trade_no]
        paid = _yuan(trade.total_fen) if trade.paid_at else "0.00"
        params = {
            "notify_time": _beijing(signed_at or _now()),
            "notify_type": "trade_status_sync",
            "notify_id": uuid.uuid4().hex + _digits(4),
            "app_id": self.app_id,
            "auth_app_id": self.app_id,
            "charset": "utf-8",
            "version": "1.0",
            "sign_type": "RSA2",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "buyer_id": BUYER_ID,
            "buyer_logon_id": BUYER_LOGON_ID,
            "seller_id": self.seller_id,
            "trade_status": trade.state,
            "total_amount": _yuan(trade.total_fen),
            "receipt_amount": paid,
            "invoice_amount": paid,
            "buyer_pay_amount": paid,
            "point_amount": "0.00",
            "subject": trade.subject,
            "gmt_create": _beijing(trade.opened_at or _now()),
            "fund_bill_list": json.dumps([{"amount": paid, "fundChannel": "ALIPAYACCOUNT"}], separators=(",", ":")),
        }
        if trade.paid_at is not None:
            params["gmt_payment"] = _beijing(trade.paid_at)
        if trade.refunds:
            params["refund_fee"] = _yuan(trade.refunded_fen)
        params.update(changes)
        params["sign"] = self._sign(_canonical(params, leave_out=("sign", "sign_type"), skip_empty=False))
        return {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, urlencode(params).encode("ascii")

    def _payable(self, out_trade_no: str) -> _Trade:
        trade = self._trades.get(out_trade_no)
        if trade is None:
            raise AdapterRefusal("TRADE_NOT_EXIST", "交易不存在")
        self._expire(trade)
        if trade.state == "LOCKED" or (trade.state == "TRADE_CLOSED" and trade.paid_at is None):
            raise AdapterRefusal("TRADE_HAS_CLOSE", "支付失败，本笔交易已关闭，请收银员重新收款")
        if trade.state == "UNOPENED" and trade.time_expire is not None and _now() > trade.time_expire:
            raise AdapterRefusal("TRADE_EXPIRED", "二维码已过期，请收银员重新收款")
        return trade

    def _open(self, trade: _Trade) -> None:
        if trade.state == "UNOPENED":
            opened = _now()
            # Alipay's trade numbers start with the date; this one is 28 digits like theirs.
            trade.trade_no = f"{opened.astimezone(BEIJING):%Y%m%d}2100100{_digits(13)}"
            trade.state, trade.opened_at = "WAIT_BUYER_PAY", opened

    @staticmethod
    def _expire(trade: _Trade) -> None:
        if trade.state == "WAIT_BUYER_PAY" and trade.time_expire is not None and _now() > trade.time_expire:
            trade.state = "TRADE_CLOSED"

    # --- the gateway -----------------------------------------------------------------------------------------------

    async def _gateway(self, request: Request) -> Response:
        if request.method == "GET":
            return await self._cashier(request)
        fault = self._faults.pop(0) if self._faults else _Fault()
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.status:
            return PlainTextResponse("Internal Server Error", status_code=fault.status)
        method = ""
        try:
            params = await self._params(request)
            self.received.append(params)
            method = params.get("method", "")
            self._check(params)
            handler = self._methods.get(method)
            if handler is None:
                raise _Failure("40002", "isv.invalid-method", "不存在的方法名")
            if fault.answer is not None:
                raise _Failure(*fault.answer)
            answer, signed = handler(self._biz(params)), True
        except _Failure as failure:
            answer, signed = failure.fields, failure.signed
        return self._answer(method, answer, signed=signed, tamper=fault.tamper)

    async def _cashier(self, request: Request) -> Response:
        """The 手机网站支付 page a signed wap.pay URL opens: the order is known to Alipay from here on."""
        try:
            params = await self._params(request)
            self._check(params)
            if params["method"] != "alipay.trade.wap.pay":
                raise _Failure("40002", "isv.invalid-method", "不存在的方法名")
            biz = self._biz(params)
            if biz.get("product_code") != "QUICK_WAP_WAY":
                raise _Failure("40004", "ACQ.INVALID_PARAMETER", "参数无效：product_code")
            trade = self._pre_order(biz)
        except _Failure as failure:
            return HTMLResponse(f"<p>{html.escape(failure.fields['sub_msg'])}</p>", status_code=400)
        return HTMLResponse(f"<h1>{html.escape(trade.subject)}</h1><p>￥{_yuan(trade.total_fen)}</p>")

    async def _params(self, request: Request) -> dict[str, str]:
        pairs = parse_qsl(request.url.query, keep_blank_values=True)
        if request.method == "POST":
            try:
                pairs += parse_qsl((await request.body()).decode("ascii"), keep_blank_values=True, errors="strict")
            except (UnicodeDecodeError, ValueError) as exc:
                raise _Failure("40002", "isv.invalid-parameter", "请求参数无法解析") from exc
        params = dict(pairs)
        if len(params) != len(pairs):
            raise _Failure("40002", "isv.invalid-parameter", "参数重复")
        return params

    def _check(self, params: Mapping[str, str]) -> None:
        for name, sub_code in _REQUIRED:
            if not params.get(name):
                raise _Failure("40001", sub_code, f"缺少{name}参数")
        if params["app_id"] != self.app_id:
            raise _Failure("40002", "isv.invalid-app-id", "无效的AppID参数")
        if params["sign_type"] != "RSA2":
            raise _Failure("40002", "isv.invalid-signature-type", "无效的签名类型")
        if params.get("charset", "").lower() != "utf-8":
            raise _Failure("40002", "isv.invalid-charset", "字符集错误")
        if params.get("format", "JSON").upper() != "JSON" or params["version"] != "1.0":
            raise _Failure("40002", "isv.invalid-parameter", "format 或 version 参数无效")
        try:
            sent = datetime.strptime(params["timestamp"], TIME_FORMAT).replace(tzinfo=BEIJING)
        except ValueError:
            sent = None
        if sent is None or abs(_now() - sent) > REQUEST_WINDOW:
            raise _Failure("40002", "isv.invalid-timestamp", "非法的时间戳参数")
        content = _canonical(params, leave_out=("sign",), skip_empty=True)
        try:
            signature = base64.b64decode(params["sign"], validate=True)
            self.app_public_key.verify(signature, content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        except (binascii.Error, InvalidSignature):
            raise _Failure(
                "40002",
                "isv.invalid-signature",
                f"验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：{content}",
                signed=False,
            ) from None

    @staticmethod
    def _biz(params: Mapping[str, str]) -> dict[str, Any]:
        try:
            biz = json.loads(params.get("biz_content", ""))
        except ValueError:
            biz = None
        if not isinstance(biz, dict):
            raise _Failure("40002", "isv.invalid-parameter", "biz_content 不是 JSON 对象")
        return biz

    def _answer(self, method: str, fields: Mapping[str, Any], *, signed: bool, tamper: bool) -> Response:
        member = f"{method.replace('.', '_')}_response" if method in self._methods else "error_response"
        payload = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        body = f'{{"{member}":{payload}'
        if signed:
            signature = self._sign(payload)
            if tamper:
                payload = payload.replace('"msg":"', '"msg":"~', 1)
                body = f'{{"{member}":{payload}'
            body += f',"sign":"{signature}"'
        return Response((body + "}").encode("utf-8"), media_type="text/html;charset=utf-8")

    def _sign(self, content: str) -> str:
        raw = self.alipay_private_key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(raw).decode("ascii")

    # --- the API methods -------------------------------------------------------------------------------------------

    def _precreate(self, biz: dict[str, Any]) -> dict[str, Any]:
        if biz.get("product_code", "FACE_TO_FACE_PAYMENT") != "FACE_TO_FACE_PAYMENT":
            raise _Failure("40004", "ACQ.INVALID_PARAMETER", "参数无效：product_code")
        trade = self._pre_order(biz)
        return {**_ok(), "out_trade_no": trade.out_trade_no, "qr_code": trade.qr_code}

    def _pre_order(self, biz: dict[str, Any]) -> _Trade:
        out_trade_no = _required(biz, "out_trade_no")
        total_fen = _amount(biz, "total_amount")
        subject = _required(biz, "subject")
        time_expire = _time(biz.get("time_expire"))
        trade = self._trades.get(out_trade_no)
        if trade is None:
            qr_code = f"https://qr.alipay.com/bax0{secrets.token_hex(10)}"
            trade = self._trades[out_trade_no] = _Trade(out_trade_no, total_fen, subject, time_expire, qr_code)
        elif trade.paid_at is not None:
            raise _Failure("40004", "ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
        elif trade.state == "TRADE_CLOSED":
            raise _Failure("40004", "ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
        elif trade.total_fen != total_fen:
            raise _Failure("40004", "ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
        return trade

    def _query(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._opened(biz)
        self._expire(trade)
        paid = _yuan(trade.total_fen) if trade.paid_at else "0.00"
        answer = {
            **_ok(),
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "buyer_logon_id": BUYER_LOGON_ID,
            "buyer_user_id": BUYER_ID,
            "trade_status": trade.state,
            "total_amount": _yuan(trade.total_fen),
            "buyer_pay_amount": paid,
            "receipt_amount": paid,
            "invoice_amount": paid,
            "point_amount": "0.00",
        }
        if trade.paid_at is not None:
            answer["send_pay_date"] = _beijing(trade.paid_at)
        return answer

    def _close(self, biz: dict[str, Any]) -> dict[str, Any]:
        unopened = self._trades.get(str(biz.get("out_trade_no", "")))
        if unopened is not None and unopened.state == "UNOPENED":
            unopened.state = "LOCKED"  # there is no trade to close, but its code is refused from now on
        trade = self._opened(biz)
        self._expire(trade)
        if trade.state != "WAIT_BUYER_PAY":
            raise _Failure("40004", "ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        trade.state = "TRADE_CLOSED"
        return {**_ok(), "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no}

    def _refund(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._opened(biz)
        amount_fen = _amount(biz, "refund_amount")
        # Without out_request_no Alipay takes the refund as the one full refund of the trade.
        request_no = str(biz.get("out_request_no") or trade.out_trade_no)
        existing = trade.refunds.get(request_no)
        if existing is not None:
            if existing.amount_fen != amount_fen:
                raise _Failure("40004", "ACQ.DISCORDANT_REPEAT_REQUEST", "不一致的请求")
            return self._refund_answer(trade, existing, fund_change=False)
        if trade.paid_at is None:
            raise _Failure("40004", "ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        if trade.state == "TRADE_CLOSED":
            raise _Failure("40004", "ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
        if trade.refunded_fen + amount_fen > trade.total_fen:
            raise _Failure("40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
        refund = trade.refunds[request_no] = _Refund(request_no, amount_fen, _now())
        self._entries.append(_BillEntry(trade, refund.at, refund))
        if trade.refunded_fen == trade.total_fen:
            trade.state = "TRADE_CLOSED"
        return self._refund_answer(trade, refund, fund_change=True)

    @staticmethod
    def _refund_answer(trade: _Trade, refund: _Refund, *, fund_change: bool) -> dict[str, Any]:
        return {
            **_ok(),
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "buyer_logon_id": BUYER_LOGON_ID,
            "fund_change": "Y" if fund_change else "N",
            # The trade's refunds so far, not this one's amount.
            "refund_fee": _yuan(trade.refunded_fen),
            "gmt_refund_pay": _beijing(refund.at),
            "send_back_fee": _yuan(refund.amount_fen if fund_change else 0),
        }

    def _refund_query(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._opened(biz)
        refund = trade.refunds.get(_required(biz, "out_request_no"))
        if refund is None:
            return _ok()  # the query ran; no refund details means no refund
        answer = {
            **_ok(),
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "out_request_no": refund.out_request_no,
            "total_amount": _yuan(trade.total_fen),
            "refund_amount": _yuan(refund.amount_fen),
            "refund_status": "REFUND_SUCCESS",
        }
        if "gmt_refund_pay" in (biz.get("query_options") or []):
            answer["gmt_refund_pay"] = _beijing(refund.at)
        return answer

    def _opened(self, biz: dict[str, Any]) -> _Trade:
        """The trade named by out_trade_no or trade_no, as Alipay knows it: only once the payer opened it."""
        out_trade_no, trade_no = biz.get("out_trade_no"), biz.get("trade_no")
        if trade_no:
            trade = next((t for t in self._trades.values() if t.trade_no == trade_no), None)
        elif out_trade_no:
            trade = self._trades.get(str(out_trade_no))
        else:
            raise _Failure("40004", "ACQ.INVALID_PARAMETER", "参数无效：out_trade_no 和 trade_no 不能同时为空")
        if trade is None or trade.state in ("UNOPENED", "LOCKED"):
            raise _Failure(
                "40004",
                "ACQ.TRADE_NOT_EXIST",
                "交易不存在",
                out_trade_no=str(out_trade_no or ""),
                buyer_pay_amount="0.00",
                invoice_amount="0.00",
                point_amount="0.00",
                receipt_amount="0.00",
            )
        return trade

    # --- bills -----------------------------------------------------------------------------------------------------

    def _bill_url(self, biz: dict[str, Any]) -> dict[str, Any]:
        if biz.get("bill_type") != "trade":
            raise _Failure("40004", "ACQ.INVALID_PARAMETER", "参数无效：bill_type（本模拟器只有 trade）")
        try:
            day = date.fromisoformat(_required(biz, "bill_date"))
        except ValueError:
            raise _Failure("40004", "ACQ.INVALID_PARAMETER", "参数无效：bill_date") from None
        entries = [entry for entry in self._entries if entry.at.astimezone(BEIJING).date() == day]
        if not entries:
            raise _Failure("40004", "isp.bill_not_exist", "账单不存在")
        file_id = secrets.token_urlsafe(16)
        self._bill_files[file_id] = (self._archive(day, entries), time.monotonic() + BILL_URL_TTL_S)
        query = urlencode(
            {"bizType": "trade", "userId": self.seller_id, "bizDates": f"{day:%Y%m%d}", "fileId": file_id}
        )
        return {**_ok(), "bill_download_url": f"{self.base_url}/downloadBillFile.resource?{query}"}

    async def _download(self, request: Request) -> Response:
        archive, valid_until = self._bill_files.get(request.query_params.get("fileId", ""), (b"", 0.0))
        if not archive or time.monotonic() > valid_until:
            return PlainTextResponse("文件不存在或链接已过期", status_code=404)
        return Response(archive, media_type="application/oct-stream")

    def _archive(self, day: date, entries: list[_BillEntry]) -> bytes:
        stem = f"{self.seller_id}0156_{day:%Y%m%d}"
        buffer = io.BytesIO()
        files = {
            f"{stem}_业务明细.csv": self._detail(day, entries),
            f"{stem}_业务明细(汇总).csv": self._summary(entries),
        }
        with zipfile.ZipFile(buffer, "w") as bundle:
            for name, text in files.items():
                member = _GbkName(name, date_time=datetime.now(BEIJING).timetuple()[:6])
                member.compress_type = zipfile.ZIP_DEFLATED
                bundle.writestr(member, text.encode("gbk"))
        return buffer.getvalue()

    def _detail(self, day: date, entries: list[_BillEntry]) -> str:
        rows = [
            "#支付宝业务明细查询",
            f"#账号：[{self.seller_id}0156]",
            f"#起始日期：[{day:%Y年%m月%d日} 00:00:00]   终止日期：[{day + timedelta(days=1):%Y年%m月%d日} 00:00:00]",
            f"#{_DASHES}业务明细列表{_DASHES}",
            BILL_COLUMNS,
        ]
        for entry in entries:
            trade, refund = entry.trade, entry.refund
            received = trade.total_fen if refund is None else -refund.amount_fen
            fee = _fee(trade.total_fen) if refund is None else -_fee(refund.amount_fen)
            values = [
                trade.trade_no,
                trade.out_trade_no,
                "交易" if refund is None else "退款",
                trade.subject,
                _beijing(trade.opened_at or entry.at),
                _beijing(entry.at),
                "",
                "",
                "",
                "",
                f"刘*({BUYER_LOGON_ID})",
                _yuan(trade.total_fen),
                _yuan(received),
                "0.00",
                "0.00",
                "0.00",
                "0.00",
                "0.00",
                "",
                "0.00",
                "0.00",
                "" if refund is None else refund.out_request_no,
                _yuan(fee),
                "0.00",
                "",
            ]
            # Each value is followed by a tab, so spreadsheets keep the long numbers as text.
            rows.append(",".join(f"{value}\t" for value in values))
        payments = [entry for entry in entries if entry.refund is None]
        refunds = [entry.refund for entry in entries if entry.refund is not None]
        rows += [
            f"#{_DASHES}业务明细列表结束{_DASHES}",
            f"#交易合计：{len(payments)}笔，商家实收共{_yuan(sum(e.trade.total_fen for e in payments))}元，商家优惠共0.00元",
            f"#退款合计：{len(refunds)}笔，商家实收退款共{_yuan(-sum(r.amount_fen for r in refunds))}元，商家优惠退款共0.00元",
            f"#导出时间：[{datetime.now(BEIJING):%Y年%m月%d日 %H:%M:%S}]",
        ]
        return "\r\n".join(rows) + "\r\n"

    @staticmethod
    def _summary(entries: list[_BillEntry]) -> str:
        payments = sum(entry.trade.total_fen for entry in entries if entry.refund is None)
        refunds = sum(entry.refund.amount_fen for entry in entries if entry.refund is not None)
        return "\r\n".join(
            [
                "#支付宝业务汇总查询",
                f"#{_DASHES}业务汇总列表{_DASHES}",
                "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）",
                f"合计,,{sum(e.refund is None for e in entries)},{sum(e.refund is not None for e in entries)},"
                f"{_yuan(payments)},{_yuan(payments - refunds)}",
                f"#{_DASHES}业务汇总列表结束{_DASHES}",
                f"#导出时间：[{datetime.now(BEIJING):%Y年%m月%d日 %H:%M:%S}]",
            ]
        )


def _ok() -> dict[str, Any]:
    return {"code": "10000", "msg": "Success"}


def _required(biz: Mapping[str, Any], name: str) -> str:
    value = biz.get(name)
    if not isinstance(value, str) or not value:
        raise _Failure("40004", "ACQ.INVALID_PARAMETER", f"参数无效：缺少 {name}")
    return value


def _amount(biz: Mapping[str, Any], name: str) -> int:
    text = _required(biz, name)
    if not _AMOUNT.fullmatch(text):
        raise _Failure("40004", "ACQ.INVALID_PARAMETER", f"参数无效：{name} 必须是元，至多两位小数")
    whole, _, cents = text.partition(".")
    fen = int(whole) * 100 + int(cents.ljust(2, "0") or 0)
    if not 1 <= fen <= 100_000_000_00:
        raise _Failure("40004", "ACQ.INVALID_PARAMETER", f"参数无效：{name} 超出范围 [0.01, 100000000]")
    return fen


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(str(value), TIME_FORMAT).replace(tzinfo=BEIJING)
    except ValueError:
        raise _Failure("40004", "ACQ.INVALID_PARAMETER", "参数无效：时间格式应为 yyyy-MM-dd HH:mm:ss") from None

"""A WeChat Pay API v3 server for tests (直连商户, 微信支付公钥 mode), with the payer's side and fault injection.

`await sim.start()` serves it with uvicorn on 127.0.0.1 on a free port inside the running event loop; `sim.base_url`
is its address; `await sim.stop()` ends it. It behaves as WeChat Pay does:

- every request's `Authorization` is verified (scheme, mchid, merchant serial number, timestamp within 5 minutes,
  SHA256withRSA over `method\\npath?query\\ntimestamp\\nnonce\\nbody\\n` with the merchant's public key); a failure
  answers 401 SIGN_ERROR;
- every API answer, errors and 204 included, is signed with the platform key (`Wechatpay-*` headers); the bill file
  is not signed, as in production, and is checked by its SHA1 instead;
- an out_trade_no repeated with identical parameters answers the same prepay_id/code_url, with any other parameter
  400 INVALID_REQUEST "201 商户订单号重复"; a paid order answers ORDERPAID, a closed one ORDER_CLOSED; an unpaid order
  past its time_expire reads CLOSED; closing is idempotent and a paid order cannot be closed (ORDERPAID);
- an out_refund_no repeated answers the existing refund (INVALID_REQUEST if its amounts differ); refunds of one order
  never add up to more than it was paid; a new refund is PROCESSING until `complete_refund`;
- callbacks are encrypted with AEAD_AES_256_GCM under the APIv3 key and signed like answers.

Every request is handled by synchronous code between two awaits, so each one is atomic on the event loop, as WeChat
Pay's own serialisation makes it. Bills are served for any day at once (the real one is ready the next morning).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
import string
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from activities.adapters.errors import AdapterRefusal
from tests.simulators.serving import serve

BEIJING = ZoneInfo("Asia/Shanghai")
SCHEME = "WECHATPAY2-SHA256-RSA2048"
REQUEST_WINDOW_S = 300
# Fees at 0.60%: one fen of turnover costs 6 units of 0.00001 元, the precision of the bill's 手续费 column.
FEE_UNITS_PER_FEN = 6
BILL_COLUMNS = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注"
)
SUMMARY_COLUMNS = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
PAID_STATES = ("SUCCESS", "REFUND")
_TRADE_STATE_DESC = {"SUCCESS": "支付成功", "REFUND": "转入退款", "NOTPAY": "未支付", "CLOSED": "已关闭"}
_AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')
_OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{6,32}$")
_OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")

Handler = Callable[[Request, dict[str, Any]], tuple[int, dict[str, Any] | None]]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass
class _Order:
    out_trade_no: str
    request: dict[str, Any]  # the first create request: a repeat must match it exactly
    trade_type: str
    total: int
    description: str
    openid: str
    expires_at: datetime | None
    prepay_id: str | None = None
    code_url: str | None = None
    state: str = "NOTPAY"
    transaction_id: str | None = None
    success_time: datetime | None = None
    charges: int = 0


@dataclass
class _Refund:
    out_refund_no: str
    order: _Order
    amount: int
    refund_id: str
    created_at: datetime
    status: str = "PROCESSING"
    success_time: datetime | None = None


@dataclass
class _Fault:
    status: int = 0
    code: str = ""
    delay_s: float = 0.0
    tamper: bool = False


def _digits(n: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(n))


def _alnum(n: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(BEIJING).isoformat(timespec="seconds")


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _fee(units: int) -> str:
    return f"{units // 100_000}.{units % 100_000:05d}"


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(400, "PARAM_ERROR", f"参数错误：缺少 {name}")
    return value


def _positive_int(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name)
    if type(value) is not int or value <= 0:
        raise ApiError(400, "PARAM_ERROR", f"参数错误：{name} 必须是正整数（分）")
    return value


def _amount(body: Mapping[str, Any]) -> Mapping[str, Any]:
    amount = body.get("amount")
    if not isinstance(amount, dict):
        raise ApiError(400, "PARAM_ERROR", "参数错误：缺少 amount")
    if amount.get("currency", "CNY") != "CNY":
        raise ApiError(400, "PARAM_ERROR", "参数错误：仅支持人民币 CNY")
    return amount


class WechatPaySimulator:
    """WeChat Pay's servers and the payer's phone. Implements the payment contract's `PaymentSimulator`."""

    def __init__(
        self,
        *,
        mch_id: str,
        appid: str,
        merchant_serial_no: str,
        merchant_public_key: rsa.RSAPublicKey,
        platform_private_key: rsa.RSAPrivateKey,
        public_key_id: str,
        apiv3_key: bytes,
    ) -> None:
        self.mch_id = mch_id
        self.appid = appid
        self.merchant_serial_no = merchant_serial_no
        self.merchant_public_key = merchant_public_key
        self.platform_private_key = platform_private_key
        self.public_key_id = public_key_id
        self.apiv3_key = apiv3_key
        self.base_url = ""
        # Why each refused request signature was refused, newest last.
        self.auth_failures: list[str] = []
        self._orders: dict[str, _Order] = {}
        self._refunds: dict[str, _Refund] = {}
        self._bill_files: dict[str, bytes] = {}
        self._faults: list[_Fault] = []
        self._corrupt_downloads = 0
        self._serving = AsyncExitStack()
        self.app = Starlette(
            routes=[
                Route("/v3/pay/transactions/jsapi", self._api(self._create_jsapi), methods=["POST"]),
                Route("/v3/pay/transactions/native", self._api(self._create_native), methods=["POST"]),
                Route("/v3/pay/transactions/out-trade-no/{out_trade_no}", self._api(self._query), methods=["GET"]),
                Route(
                    "/v3/pay/transactions/out-trade-no/{out_trade_no}/close", self._api(self._close), methods=["POST"]
                ),
                Route("/v3/refund/domestic/refunds", self._api(self._refund), methods=["POST"]),
                Route("/v3/refund/domestic/refunds/{out_refund_no}", self._api(self._query_refund), methods=["GET"]),
                Route("/v3/bill/tradebill", self._api(self._tradebill), methods=["GET"]),
                Route("/v3/billdownload/file", self._download, methods=["GET"]),
            ]
        )

    # --- serving ---------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.base_url = await self._serving.enter_async_context(serve(self.app))

    async def stop(self) -> None:
        await self._serving.aclose()

    # --- fault injection -------------------------------------------------------------------------------------------

    def fail_next(self, n: int = 1, *, status: int = 500, code: str = "SYSTEM_ERROR", after: int = 0) -> None:
        """After `after` untouched API calls, the next `n` answer `status`/`code` without doing anything."""
        self._schedule(_Fault(status=status, code=code), n, after)

    def delay_next(self, n: int = 1, *, seconds: float, after: int = 0) -> None:
        """After `after` untouched API calls, the next `n` wait `seconds` and are then performed (a client that
        timed out meanwhile never hears the answer, as with a real network)."""
        self._schedule(_Fault(delay_s=seconds), n, after)

    def tamper_next(self, n: int = 1, *, after: int = 0) -> None:
        """After `after` untouched API calls, the next `n` are performed but their signed answer is altered."""
        self._schedule(_Fault(tamper=True), n, after)

    def _schedule(self, fault: _Fault, n: int, after: int) -> None:
        self._faults.extend([_Fault()] * after + [fault] * n)

    def corrupt_next_download(self) -> None:
        self._corrupt_downloads += 1

    def clear_faults(self) -> None:
        self._faults.clear()
        self._corrupt_downloads = 0

    # --- the payer's side and WeChat Pay's callbacks ---------------------------------------------------------------

    async def simulate_payment(
        self, out_trade_no: str, *, signed_at: datetime | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The payer pays (charged at most once); returns the TRANSACTION.SUCCESS callback, signed as of
        `signed_at`. A paid order answers a fresh callback, as a redelivery would."""
        order = self._orders.get(out_trade_no)
        if order is None:
            raise AdapterRefusal("ORDER_NOT_EXIST", "订单不存在")
        self._expire(order)
        if order.state == "CLOSED":
            raise AdapterRefusal("ORDER_CLOSED", "订单已关闭，无法支付")
        if order.state == "NOTPAY":
            order.state = "SUCCESS"
            order.transaction_id = "4200" + _digits(24)
            order.success_time = datetime.now(UTC).replace(microsecond=0)
            order.charges += 1
        return self._notification("TRANSACTION.SUCCESS", "支付成功", "transaction", self._transaction(order), signed_at)

    async def charges(self, out_trade_no: str) -> int:
        order = self._orders.get(out_trade_no)
        return 0 if order is None else order.charges

    def complete_refund(
        self, out_refund_no: str, *, status: str = "SUCCESS", signed_at: datetime | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The refund reaches its end state (SUCCESS, CLOSED or ABNORMAL); returns the REFUND.* callback."""
        refund = self._refunds[out_refund_no]
        refund.status = status
        if status == "SUCCESS":
            refund.success_time = datetime.now(UTC).replace(microsecond=0)
        resource = {
            "mchid": self.mch_id,
            "out_trade_no": refund.order.out_trade_no,
            "transaction_id": refund.order.transaction_id,
            "out_refund_no": refund.out_refund_no,
            "refund_id": refund.refund_id,
            "refund_status": refund.status,
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": refund.order.total,
                "refund": refund.amount,
                "payer_total": refund.order.total,
                "payer_refund": refund.amount,
            },
        }
        if refund.success_time is not None:
            resource["success_time"] = _rfc3339(refund.success_time)
        summary = {"SUCCESS": "退款成功", "CLOSED": "退款关闭"}.get(status, "退款异常")
        return self._notification(f"REFUND.{status}", summary, "refund", resource, signed_at)

    def sign(self, body: bytes, *, at: datetime | None = None) -> dict[str, str]:
        """The `Wechatpay-*` headers WeChat Pay puts on an answer or callback with this body."""
        timestamp = str(int(time.time() if at is None else at.timestamp()))
        nonce = _alnum(32)
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        signature = self.platform_private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": base64.b64encode(signature).decode(),
            "Wechatpay-Serial": self.public_key_id,
        }

    def encrypt(self, plaintext: bytes, *, associated_data: str) -> dict[str, str]:
        """A callback `resource` object holding `plaintext`."""
        nonce = _alnum(12)
        ciphertext = AESGCM(self.apiv3_key).encrypt(nonce.encode(), plaintext, associated_data.encode())
        return {
            "original_type": associated_data,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(ciphertext).decode(),
            "associated_data": associated_data,
            "nonce": nonce,
        }

    def _notification(
        self, event_type: str, summary: str, kind: str, resource: dict[str, Any], signed_at: datetime | None
    ) -> tuple[dict[str, str], bytes]:
        plaintext = json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode()
        envelope = {
            "id": str(uuid.uuid4()),
            "create_time": _rfc3339(signed_at or datetime.now(UTC)),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary,
            "resource": self.encrypt(plaintext, associated_data=kind),
        }
        body = json.dumps(envelope, ensure_ascii=False).encode()
        return self.sign(body, at=signed_at), body

    # --- the bill --------------------------------------------------------------------------------------------------

    def bill_csv(self, bill_date: date) -> bytes | None:
        """The ALL trade bill of a Beijing calendar day, or None when nothing happened that day."""
        rows: list[tuple[datetime, list[str]]] = []
        paid = refunded = fee_units = 0
        for order in self._orders.values():
            when = order.success_time
            if when is not None and when.astimezone(BEIJING).date() == bill_date:
                rows.append((when, self._payment_row(order, when)))
                paid += order.total
                fee_units += order.total * FEE_UNITS_PER_FEN
        for refund in self._refunds.values():
            when = refund.success_time or refund.created_at
            if when.astimezone(BEIJING).date() == bill_date:
                rows.append((when, self._refund_row(refund, when)))
                refunded += refund.amount
                fee_units -= refund.amount * FEE_UNITS_PER_FEN
        if not rows:
            return None
        rows.sort(key=lambda row: row[0])
        fee_total = (Decimal(fee_units) / 100_000).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        summary = [str(len(rows)), _yuan(paid), _yuan(refunded), "0.00", str(fee_total), _yuan(paid), _yuan(refunded)]
        lines = [BILL_COLUMNS, *("`" + ",`".join(fields) for _, fields in rows), SUMMARY_COLUMNS]
        lines.append("`" + ",`".join(summary))
        return ("\r\n".join(lines) + "\r\n").encode()

    def _payment_row(self, order: _Order, when: datetime) -> list[str]:
        total = _yuan(order.total)
        return [
            *self._row_start(order, when),
            "SUCCESS",
            "OTHERS",
            "CNY",
            total,
            "0.00",
            "0",
            "0",
            "0.00",
            "0.00",
            "",
            "",
            order.description,
            "",
            _fee(order.total * FEE_UNITS_PER_FEN),
            "0.60%",
            total,
            "0.00",
            "",
        ]

    def _refund_row(self, refund: _Refund, when: datetime) -> list[str]:
        amount = _yuan(refund.amount)
        return [
            *self._row_start(refund.order, when),
            "REFUND",
            "OTHERS",
            "CNY",
            "0.00",
            "0.00",
            refund.refund_id,
            refund.out_refund_no,
            amount,
            "0.00",
            "ORIGINAL",
            refund.status,
            refund.order.description,
            "",
            "-" + _fee(refund.amount * FEE_UNITS_PER_FEN),
            "0.60%",
            "0.00",
            amount,
            "",
        ]

    def _row_start(self, order: _Order, when: datetime) -> list[str]:
        return [
            when.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
            self.appid,
            self.mch_id,
            "0",
            "",
            order.transaction_id or "",
            order.out_trade_no,
            order.openid,
            order.trade_type,
        ]

    # --- HTTP plumbing ---------------------------------------------------------------------------------------------

    def _api(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            fault = self._faults.pop(0) if self._faults else None
            if fault is not None and fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            if fault is not None and fault.status:
                return self._answer(fault.status, {"code": fault.code, "message": "系统繁忙，请稍后重试"})
            raw = await request.body()
            try:
                self._authenticate(request, raw)
                body = json.loads(raw) if raw else {}
                if not isinstance(body, dict):
                    raise ApiError(400, "PARAM_ERROR", "请求体必须是 JSON 对象")
                status, answer = handler(request, body)
            except ApiError as error:
                status, answer = error.status, {"code": error.code, "message": error.message}
            except ValueError:
                status, answer = 400, {"code": "PARAM_ERROR", "message": "请求体不是合法的 JSON"}
            return self._answer(status, answer, tamper=fault is not None and fault.tamper)

        return endpoint

    def _answer(self, status: int, answer: dict[str, Any] | None, *, tamper: bool = False) -> Response:
        body = b"" if answer is None else json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {**self.sign(body), "Request-ID": uuid.uuid4().hex}
        if tamper:
            body = _tampered(body)
        return Response(
            body, status_code=status, headers=headers, media_type=None if answer is None else "application/json"
        )

    def _authenticate(self, request: Request, body: bytes) -> None:
        scheme, _, rest = request.headers.get("authorization", "").partition(" ")
        fields = dict(_AUTH_FIELD.findall(rest))
        timestamp = fields.get("timestamp", "")
        if scheme != SCHEME:
            reason = "Authorization 认证类型错误"
        elif fields.get("mchid") != self.mch_id:
            reason = "Authorization 中的商户号不正确"
        elif fields.get("serial_no") != self.merchant_serial_no:
            reason = "商户证书序列号不正确"
        elif not timestamp.isdigit() or abs(time.time() - int(timestamp)) > REQUEST_WINDOW_S:
            reason = "请求时间戳已过期"
        else:
            query = request.scope["query_string"].decode()
            target = request.scope["raw_path"].decode() + (f"?{query}" if query else "")
            message = (
                f"{request.method}\n{target}\n{timestamp}\n{fields.get('nonce_str', '')}\n".encode() + body + b"\n"
            )
            try:
                signature = base64.b64decode(fields.get("signature", ""), validate=True)
                self.merchant_public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
                return
            except (ValueError, InvalidSignature):
                reason = "签名错误"
        self.auth_failures.append(reason)
        raise ApiError(401, "SIGN_ERROR", reason)

    async def _download(self, request: Request) -> Response:
        try:
            self._authenticate(request, b"")
        except ApiError as error:
            return self._answer(error.status, {"code": error.code, "message": error.message})
        content = self._bill_files.get(request.query_params.get("token", ""))
        if content is None:
            return self._answer(400, {"code": "INVALID_REQUEST", "message": "账单下载地址已失效"})
        if self._corrupt_downloads:
            self._corrupt_downloads -= 1
            content = _tampered(content)
        return Response(content, media_type="application/octet-stream")

    # --- the API ---------------------------------------------------------------------------------------------------

    def _create_jsapi(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        order = self._create("JSAPI", body)
        return 200, {"prepay_id": order.prepay_id}

    def _create_native(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        order = self._create("NATIVE", body)
        return 200, {"code_url": order.code_url}

    def _create(self, trade_type: str, body: dict[str, Any]) -> _Order:
        self._check_merchant(body)
        if body.get("appid") != self.appid:
            raise ApiError(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        out_trade_no = _text(body, "out_trade_no")
        if not _OUT_TRADE_NO.match(out_trade_no):
            raise ApiError(400, "PARAM_ERROR", "参数错误：out_trade_no 格式不正确")
        description = _text(body, "description")
        if not _text(body, "notify_url").startswith("https://"):
            raise ApiError(400, "PARAM_ERROR", "参数错误：notify_url 必须是 https 地址")
        total = _positive_int(_amount(body), "total")
        openid = _text(body.get("payer") or {}, "openid") if trade_type == "JSAPI" else "o" + _alnum(27)
        try:
            expires_at = datetime.fromisoformat(body["time_expire"]) if "time_expire" in body else None
        except (TypeError, ValueError):
            raise ApiError(400, "PARAM_ERROR", "参数错误：time_expire 格式不正确") from None
        order = self._orders.get(out_trade_no)
        if order is not None:
            self._expire(order)
            if order.state in PAID_STATES:
                raise ApiError(400, "ORDERPAID", "该订单已支付")
            if order.state == "CLOSED":
                raise ApiError(400, "ORDER_CLOSED", "订单已关闭")
            if order.request != body or order.trade_type != trade_type:
                raise ApiError(400, "INVALID_REQUEST", "201 商户订单号重复")
            return order
        order = _Order(out_trade_no, body, trade_type, total, description, openid, expires_at)
        if trade_type == "JSAPI":
            order.prepay_id = "wx" + datetime.now(BEIJING).strftime("%d%H%M%S") + secrets.token_hex(13)
        else:
            order.code_url = "weixin://wxpay/bizpayurl?pr=" + _alnum(9)
        self._orders[out_trade_no] = order
        return order

    def _query(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        if request.query_params.get("mchid") != self.mch_id:
            raise ApiError(400, "PARAM_ERROR", "参数错误：mchid 不正确")
        return 200, self._transaction(self._order(request.path_params["out_trade_no"]))

    def _close(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        self._check_merchant(body)
        order = self._order(request.path_params["out_trade_no"])
        self._expire(order)
        if order.state in PAID_STATES:
            raise ApiError(400, "ORDERPAID", "订单已支付，不能关闭")
        order.state = "CLOSED"
        return 204, None

    def _refund(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        out_refund_no = _text(body, "out_refund_no")
        if not _OUT_REFUND_NO.match(out_refund_no):
            raise ApiError(400, "PARAM_ERROR", "参数错误：out_refund_no 格式不正确")
        out_trade_no = _text(body, "out_trade_no")
        amount = _amount(body)
        wanted, total = _positive_int(amount, "refund"), _positive_int(amount, "total")
        existing = self._refunds.get(out_refund_no)
        if existing is not None:
            if (existing.order.out_trade_no, existing.amount, existing.order.total) != (out_trade_no, wanted, total):
                raise ApiError(400, "INVALID_REQUEST", "订单金额或退款金额与之前请求不一致，请核实后再试")
            return 200, self._refund_view(existing)
        order = self._orders.get(out_trade_no)
        if order is None:
            raise ApiError(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if order.state not in PAID_STATES:
            raise ApiError(400, "INVALID_REQUEST", "订单未支付，不能退款")
        if total != order.total:
            raise ApiError(400, "PARAM_ERROR", "参数错误：订单金额与原支付金额不一致")
        refunded = sum(
            r.amount for r in self._refunds.values() if r.order is order and r.status in ("PROCESSING", "SUCCESS")
        )
        if refunded + wanted > order.total:
            raise ApiError(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        refund = _Refund(out_refund_no, order, wanted, "50" + _digits(27), datetime.now(UTC).replace(microsecond=0))
        self._refunds[out_refund_no] = refund
        order.state = "REFUND"
        return 200, self._refund_view(refund)

    def _query_refund(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        refund = self._refunds.get(request.path_params["out_refund_no"])
        if refund is None:
            raise ApiError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return 200, self._refund_view(refund)

    def _tradebill(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        try:
            bill_date = date.fromisoformat(request.query_params.get("bill_date", ""))
        except ValueError:
            raise ApiError(400, "PARAM_ERROR", "参数错误：bill_date 格式应为 yyyy-MM-dd") from None
        if request.query_params.get("bill_type", "ALL") != "ALL":
            raise ApiError(400, "PARAM_ERROR", "参数错误：模拟器仅支持 bill_type=ALL")
        content = self.bill_csv(bill_date)
        if content is None:
            raise ApiError(400, "NO_STATEMENT_EXIST", "请求的账单文件不存在")
        token = secrets.token_urlsafe(16)
        self._bill_files[token] = content
        return 200, {
            "hash_type": "SHA1",
            "hash_value": hashlib.sha1(content).hexdigest(),
            "download_url": f"{self.base_url}/v3/billdownload/file?token={token}",
        }

    # --- helpers ---------------------------------------------------------------------------------------------------

    def _check_merchant(self, body: Mapping[str, Any]) -> None:
        if body.get("mchid") != self.mch_id:
            raise ApiError(400, "MCH_NOT_EXISTS", "商户号不存在")

    def _order(self, out_trade_no: str) -> _Order:
        order = self._orders.get(out_trade_no)
        if order is None:
            raise ApiError(404, "ORDER_NOT_EXIST", "订单不存在")
        return order

    @staticmethod
    def _expire(order: _Order) -> None:
        if order.state == "NOTPAY" and order.expires_at is not None and datetime.now(UTC) > order.expires_at:
            order.state = "CLOSED"

    def _transaction(self, order: _Order) -> dict[str, Any]:
        self._expire(order)
        view: dict[str, Any] = {
            "appid": self.appid,
            "mchid": self.mch_id,
            "out_trade_no": order.out_trade_no,
            "trade_type": order.trade_type,
            "trade_state": order.state,
            "trade_state_desc": _TRADE_STATE_DESC[order.state],
            "attach": "",
            "amount": {"total": order.total, "currency": "CNY"},
        }
        if order.transaction_id is not None and order.success_time is not None:
            view["transaction_id"] = order.transaction_id
            view["bank_type"] = "OTHERS"
            view["success_time"] = _rfc3339(order.success_time)
            view["payer"] = {"openid": order.openid}
            view["amount"].update(payer_total=order.total, payer_currency="CNY")
        return view

    def _refund_view(self, refund: _Refund) -> dict[str, Any]:
        view: dict[str, Any] = {
            "refund_id": refund.refund_id,
            "out_refund_no": refund.out_refund_no,
            "transaction_id": refund.order.transaction_id,
            "out_trade_no": refund.order.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": _rfc3339(refund.created_at),
            "status": refund.status,
            "funds_account": "AVAILABLE",
            "amount": {
                "total": refund.order.total,
                "refund": refund.amount,
                "payer_total": refund.order.total,
                "payer_refund": refund.amount,
                "settlement_total": refund.order.total,
                "settlement_refund": refund.amount,
                "discount_refund": 0,
                "currency": "CNY",
            },
        }
        if refund.success_time is not None:
            view["success_time"] = _rfc3339(refund.success_time)
        return view


def _tampered(data: bytes) -> bytes:
    """`data` with its first digit changed (an amount or an id), or a byte appended if it has none."""
    for i, byte in enumerate(data):
        if 0x30 <= byte <= 0x39:
            return data[:i] + bytes([0x30 + (byte - 0x30 + 1) % 10]) + data[i + 1 :]
    return data + b" "

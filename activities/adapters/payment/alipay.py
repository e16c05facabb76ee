"""Alipay (支付宝) payment channel over the classic OpenAPI gateway (`gateway.do`), public-key mode, RSA2.

Pay products: 当面付 `alipay.trade.precreate` (its QR code string is the pay_url) or 手机网站支付 `alipay.trade.wap.pay`
(a signed gateway URL the payer's browser opens; nothing is sent to Alipay until then). Every request carries the
common parameters and its signature; every answer is verified over the raw JSON text Alipay signed. Money is fen
here and 元 strings with two decimals on the wire; times on the wire are Beijing time.

Idempotency: Alipay deduplicates an order on out_trade_no and a refund on out_request_no, which is our
out_refund_no; closing is repeatable. A retried activity sends the same arguments, so it reaches the same order or
refund and gets the same answer, and no money moves twice. The `idempotency_key` has no field in Alipay's API and
is not sent: the business numbers are the keys.

What Alipay cannot tell back. An order exists at Alipay only once the payer opens it (scans the QR code, or enters
the wap page's password); before that, query and close answer ACQ.TRADE_NOT_EXIST. The adapter remembers, in this
process, the orders it created (`_Memory`), to answer for them with their amount and whether they were closed. A
process that did not create the order (another worker, or after a restart) answers an unopened order with
amount_fen 0 and NOTPAY (CLOSED from close_order): the Bill flow reads an amount only from a paid order, and closes
its order itself at the deadline, so nothing it decides rests on what only one process knows.
"""

from __future__ import annotations

import codecs
import json
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.errors import AdapterError, AdapterRefusal, InvalidCallback
from activities.adapters.payment.alipay_bill import (
    BillArchiveError,
    BillFormatError,
    fen_to_yuan,
    parse_trade_bill,
    yuan_to_fen,
)
from activities.adapters.payment.alipay_signing import (
    ResponseShapeError,
    load_private_key,
    load_public_key,
    notify_sign_content,
    request_sign_content,
    sign,
    split_response,
    verify,
)
from core.settings import Settings
from models.billing import (
    ChannelBillLine,
    ChannelOrder,
    ChannelOrderStatus,
    ChannelRefund,
    PaymentNotice,
    RefundStatus,
)

_BEIJING = ZoneInfo("Asia/Shanghai")
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_SUCCESS = "10000"
_BUSINESS_FAILED = "40004"
# 40004 answers that are no verdict on the request, only "not now" (Alipay asks for a retry with the same arguments).
_RETRYABLE = frozenset({"ACQ.SYSTEM_ERROR", "AQC.SYSTEM_ERROR"})
# Close answers meaning "this trade is not waiting for payment": it was paid, or is closed, so it is reported as is.
_NOT_CLOSABLE = frozenset(
    {
        "ACQ.TRADE_STATUS_ERROR",
        "ACQ.REASON_TRADE_STATUS_INVALID",
        "ACQ.REASON_ILLEGAL_STATUS",
        "ACQ.TRADE_HAS_SUCCESS",
        "ACQ.TRADE_HAS_CLOSE",
        "ACQ.TRADE_HAS_FINISHED",
    }
)
# Alipay sub_code → the platform's stable code (the one the flows branch on, shared with the other channels) and
# what staff or the payer are told. Any other refusal keeps Alipay's sub_code and sub_msg.
_REFUSALS: dict[str, tuple[str, str]] = {
    "ACQ.TRADE_NOT_EXIST": ("ORDER_NOT_EXIST", "支付宝无此交易（付款人尚未扫码或打开支付页，或订单号有误）"),
    "ACQ.TRADE_HAS_SUCCESS": ("ORDER_PAID", "订单已支付"),
    "ACQ.TRADE_HAS_CLOSE": ("ORDER_CLOSED", "订单已关闭"),
    "ACQ.TRADE_HAS_FINISHED": ("ORDER_FINISHED", "交易已完结，不能再退款"),
    "ACQ.TRADE_STATUS_ERROR": ("ORDER_STATUS_INVALID", "订单当前状态不允许此操作"),
    "ACQ.CONTEXT_INCONSISTENT": ("OUT_TRADE_NO_USED", "商户订单号已被使用，且订单信息不一致"),
    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL": ("REFUND_EXCEEDS_PAID", "退款金额超过订单可退金额"),
    "ACQ.REASON_TRADE_REFUND_FEE_ERR": ("REFUND_EXCEEDS_PAID", "退款金额超过订单可退金额"),
    "ACQ.DISCORDANT_REPEAT_REQUEST": ("OUT_REFUND_NO_USED", "退款单号已被使用，且订单或金额不一致"),
    "ACQ.SELLER_BALANCE_NOT_ENOUGH": ("SELLER_BALANCE_NOT_ENOUGH", "商户支付宝账户余额不足，暂时无法退款"),
    "isp.bill_not_exist": ("BILL_NOT_EXIST", "该日支付宝账单不存在（当日无交易或账单尚未生成）"),
}

T = TypeVar("T")
# Orders `_Memory` keeps; the oldest go first, so a long-running worker does not grow without bound.
_MEMORY_LIMIT = 100_000


class _Refused(AdapterRefusal):
    """A business refusal (40004) in a verified answer, keeping Alipay's sub_code for callers that expect some."""

    def __init__(self, sub_code: str, sub_msg: str) -> None:
        code, message = _REFUSALS.get(sub_code, (sub_code or "ALIPAY_REFUSED", sub_msg or "支付宝拒绝了该请求"))
        super().__init__(code, message)
        self.sub_code = sub_code


@dataclass
class _Unopened:
    amount_fen: int
    pay_url: str
    closed: bool = False


class _Memory:
    """What Alipay cannot tell back, as this process learnt it (see the module docstring)."""

    def __init__(self) -> None:
        self.orders: OrderedDict[str, _Unopened] = OrderedDict()

    def created(self, out_trade_no: str, order: _Unopened) -> None:
        # A retried create must not forget that the order was closed meanwhile.
        _keep(self.orders, out_trade_no, self.orders.get(out_trade_no, order))

    def closed(self, out_trade_no: str) -> _Unopened | None:
        order = self.orders.get(out_trade_no)
        if order is not None:
            order.closed = True
        return order


def _keep(table: OrderedDict[str, T], key: str, value: T) -> None:
    table[key] = value
    table.move_to_end(key)
    if len(table) > _MEMORY_LIMIT:
        table.popitem(last=False)


class AlipayChannel:
    """`PaymentChannel` for Alipay. `client` and `gateway_url` are for tests (a local gateway); by default the
    adapter owns an `httpx.AsyncClient` with the configured timeout and talks to `settings.alipay_gateway_url`."""

    name = "alipay"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession] | None,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
        gateway_url: str | None = None,
    ) -> None:
        # `sessions` is what the registry hands every adapter; Alipay keeps the records, so it is not used.
        required = ("alipay_app_id", "alipay_app_private_key_path", "alipay_public_key_path", "alipay_seller_id")
        missing = [f"QIHUANG_{name.upper()}" for name in required if not getattr(settings, name)]
        if missing:
            raise ValueError(f"the Alipay channel needs {', '.join(missing)}")
        self._app_id = settings.alipay_app_id
        self._seller_id = settings.alipay_seller_id
        self._app_key = load_private_key(settings.alipay_app_private_key_path)
        self._alipay_key = load_public_key(settings.alipay_public_key_path)
        self._gateway = gateway_url or settings.alipay_gateway_url
        self._notify_url = settings.alipay_notify_url
        self._return_url = settings.alipay_return_url
        self._product = settings.alipay_pay_product
        self._notify_window = timedelta(seconds=settings.alipay_notify_window_s)
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=settings.alipay_timeout_s)
        self._memory = _Memory()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # --- the channel API -------------------------------------------------------------------------------------------

    async def create_order(
        self, *, idempotency_key: str, out_trade_no: str, amount_fen: int, description: str, expires_at: datetime
    ) -> ChannelOrder:
        if amount_fen <= 0:
            raise AdapterRefusal("INVALID_AMOUNT", "支付金额必须大于零")
        biz: dict[str, Any] = {
            "out_trade_no": out_trade_no,
            "total_amount": fen_to_yuan(amount_fen),
            "subject": _subject(description),
            # Alipay closes the trade itself at this time, so the code or page stops taking money with the bill.
            "time_expire": _beijing(expires_at),
        }
        if self._product == "wap":
            biz["product_code"] = "QUICK_WAP_WAY"
            if self._return_url:
                biz["quit_url"] = self._return_url
            # The URL carries its signing time, which the gateway checks as for any request, and each call signs
            # anew (a retry gets another URL for the same order): hand it to the payer at once, do not keep it.
            pay_url = f"{self._gateway}?{urlencode(self._signed('alipay.trade.wap.pay', biz, page=True))}"
        else:
            biz["product_code"] = "FACE_TO_FACE_PAYMENT"
            try:
                answer = await self._call("alipay.trade.precreate", biz)
            except _Refused as refused:
                if refused.sub_code not in ("ACQ.TRADE_HAS_SUCCESS", "ACQ.TRADE_HAS_CLOSE"):
                    raise
                # A retry after the payer paid, or after the order closed: answer with the order as it is now.
                order = await self.query_order(out_trade_no=out_trade_no)
                if order.amount_fen != amount_fen:
                    raise AdapterRefusal("OUT_TRADE_NO_USED", "商户订单号已被使用，且金额不一致") from refused
                return order
            with _malformed_as(AdapterError, "alipay.trade.precreate"):
                pay_url = _text(answer, "qr_code")
        self._memory.created(out_trade_no, _Unopened(amount_fen, pay_url))
        return ChannelOrder(
            out_trade_no=out_trade_no, amount_fen=amount_fen, status=ChannelOrderStatus.NOTPAY, pay_url=pay_url
        )

    async def query_order(self, *, out_trade_no: str) -> ChannelOrder:
        try:
            answer = await self._call("alipay.trade.query", {"out_trade_no": out_trade_no})
        except _Refused as refused:
            if refused.sub_code != "ACQ.TRADE_NOT_EXIST":
                raise
            return self._unopened(out_trade_no, closing=False)
        with _malformed_as(AdapterError, "alipay.trade.query"):
            return self._order(answer)

    async def close_order(self, *, idempotency_key: str, out_trade_no: str) -> ChannelOrder:
        try:
            await self._call("alipay.trade.close", {"out_trade_no": out_trade_no})
        except _Refused as refused:
            if refused.sub_code == "ACQ.TRADE_NOT_EXIST":
                # Nobody has opened it, so there is no trade to close. Alipay refuses the QR code from now on
                # (a wap page, which creates the trade only at the password, stays payable until time_expire: such
                # a late payment reaches the bill as a notice after it closed).
                return self._unopened(out_trade_no, closing=True)
            if refused.sub_code not in _NOT_CLOSABLE:
                raise
            # Paid (or closed) meanwhile: report the trade as it is, never fail.
        return await self.query_order(out_trade_no=out_trade_no)

    async def refund(
        self, *, idempotency_key: str, out_trade_no: str, out_refund_no: str, amount_fen: int, reason: str
    ) -> ChannelRefund:
        if amount_fen <= 0:
            raise AdapterRefusal("INVALID_AMOUNT", "退款金额必须大于零")
        biz = {
            "out_trade_no": out_trade_no,
            "refund_amount": fen_to_yuan(amount_fen),
            "refund_reason": reason[:256],
            # The refund's key at Alipay (required for partial refunds): the same number and amount again moves no
            # money, another amount is refused.
            "out_request_no": out_refund_no,
        }
        # Remembered before the call: if the answer is lost, the refund may still have happened and be queried.
        try:
            answer = await self._call("alipay.trade.refund", biz)
        except _Refused as refused:
            if refused.sub_code in ("ACQ.TRADE_NOT_EXIST", "ACQ.TRADE_STATUS_ERROR"):
                raise AdapterRefusal("ORDER_NOT_PAID", "订单未支付，无法退款") from refused
            raise
        if answer.get("fund_change") == "Y":
            with _malformed_as(AdapterError, "alipay.trade.refund"):
                refunded_at = _time(answer.get("gmt_refund_pay"))
            return ChannelRefund(
                out_refund_no=out_refund_no,
                out_trade_no=out_trade_no,
                amount_fen=amount_fen,
                status=RefundStatus.SUCCEEDED,
                succeeded_at=refunded_at,
            )
        # "N": this refund was made before (a retry), or has not settled yet; only the refund query tells which.
        found = await self._query_refund(out_trade_no, out_refund_no)
        return found or ChannelRefund(
            out_refund_no=out_refund_no,
            out_trade_no=out_trade_no,
            amount_fen=amount_fen,
            status=RefundStatus.PROCESSING,
        )

    async def query_refund(self, *, out_trade_no: str, out_refund_no: str) -> ChannelRefund:
        found = await self._query_refund(out_trade_no, out_refund_no)
        if found is None:
            raise AdapterRefusal("REFUND_NOT_EXIST", "支付宝查无此退款（退款未成功，可用同一退款单号重试）")
        return found

    def parse_payment_notice(self, headers: Mapping[str, str], body: bytes) -> PaymentNotice:
        params = _form(headers, body)
        if params.get("sign_type") != "RSA2" or not params.get("sign"):
            raise InvalidCallback("notify is not signed with RSA2")
        if not verify(self._alipay_key, notify_sign_content(params), params["sign"]):
            raise InvalidCallback("notify signature does not verify")
        # Verified as Alipay's; now it must be about this app's trades with this merchant.
        if params.get("app_id") != self._app_id:
            raise InvalidCallback("notify is for another app_id")
        if params.get("seller_id") != self._seller_id:
            raise InvalidCallback("notify is for another seller_id")
        with _malformed_as(InvalidCallback, "notify"):
            sent_at = _time(params.get("notify_time"))
            # A captured notify replays only within the window. A redelivery carries its own notify_time; should one
            # come late anyway, closing the bill still finds the payment at Alipay.
            if sent_at is None or abs(datetime.now(UTC) - sent_at) > self._notify_window:
                raise InvalidCallback("notify_time is missing or outside the accepted window")
            paid_at = _time(params.get("gmt_payment"))
            status = _order_status(params["trade_status"], paid=paid_at is not None)
            return PaymentNotice(
                out_trade_no=_text(params, "out_trade_no"),
                status=status,
                amount_fen=yuan_to_fen(params["total_amount"]),
                transaction_id=_text(params, "trade_no"),
                paid_at=paid_at if status is ChannelOrderStatus.SUCCESS else None,
            )

    # --- reconciliation --------------------------------------------------------------------------------------------

    async def download_bill(self, *, bill_date: date) -> list[ChannelBillLine]:
        """The day's 业务明细 (bill_type trade; ready after about 10:00 the next day)."""
        method = "alipay.data.dataservice.bill.downloadurl.query"
        answer = await self._call(method, {"bill_type": "trade", "bill_date": bill_date.isoformat()})
        with _malformed_as(AdapterError, method):
            url = _text(answer, "bill_download_url")
        # The URL authorises itself for about 30 seconds and the file is not signed; the URL came in a verified answer.
        try:
            response = await self._client.get(url, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise AdapterError(f"alipay bill download: {exc!r}") from exc
        if response.status_code != 200:
            raise AdapterError(f"alipay bill download: HTTP {response.status_code}")
        try:
            return parse_trade_bill(response.content)
        except BillArchiveError as exc:  # cut short in transit: another download may succeed
            raise AdapterError(f"alipay bill download: {exc}") from exc
        except BillFormatError as exc:
            raise AdapterRefusal("BILL_UNREADABLE", f"支付宝账单格式无法识别：{exc}") from exc

    # --- the gateway -----------------------------------------------------------------------------------------------

    def _signed(self, method: str, biz: Mapping[str, Any], *, page: bool = False) -> dict[str, str]:
        params = {
            "app_id": self._app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": _beijing(datetime.now(UTC)),
            "version": "1.0",
            "notify_url": self._notify_url,
            "return_url": self._return_url if page else "",
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        params = {name: value for name, value in params.items() if value}  # empty ones are neither signed nor sent
        params["sign"] = sign(self._app_key, request_sign_content(params))
        return params

    async def _call(self, method: str, biz: Mapping[str, Any]) -> dict[str, Any]:
        body = urlencode(self._signed(method, biz)).encode("ascii")
        try:
            response = await self._client.post(
                self._gateway, content=body, headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}
            )
        except httpx.TimeoutException as exc:
            raise AdapterError(f"alipay {method}: timed out") from exc
        except httpx.HTTPError as exc:
            raise AdapterError(f"alipay {method}: {exc!r}") from exc
        if response.status_code != 200:
            raise AdapterError(f"alipay {method}: HTTP {response.status_code}")
        return self._open(method, response.content)

    def _open(self, method: str, raw: bytes) -> dict[str, Any]:
        """The verified answer of a successful call; raises `_Refused` for a business refusal, else `AdapterError`."""
        try:
            text = raw.decode("utf-8")  # the charset we asked for
            payload, signature = split_response(text, method)
            answer = json.loads(payload)
        except (UnicodeDecodeError, ResponseShapeError, json.JSONDecodeError) as exc:
            raise AdapterError(f"alipay {method}: unreadable answer ({exc})") from exc
        if not isinstance(answer, dict):
            raise AdapterError(f"alipay {method}: the answer is not an object")
        code, sub_code = str(answer.get("code", "")), str(answer.get("sub_code", ""))
        described = f"alipay {method}: {code} {answer.get('msg', '')} {sub_code} {answer.get('sub_msg', '')}".rstrip()
        if signature is None:
            # The gateway answers unsigned when it stops early (e.g. our signature did not verify). Nothing unsigned
            # is trusted as a success or as a business verdict.
            raise AdapterError(f"{described} (unsigned answer)")
        if not verify(self._alipay_key, payload, signature):
            raise AdapterError(f"alipay {method}: the answer's signature does not verify")
        if code == _SUCCESS:
            return answer
        if code == _BUSINESS_FAILED and sub_code not in _RETRYABLE:
            raise _Refused(sub_code, str(answer.get("sub_msg", "")))
        # 20000 (service unavailable) and 20001/40001/40002/40006 (our credentials, parameters or permissions): no
        # verdict on the request itself; a retry, or a fix of our configuration, gets through.
        raise AdapterError(described)

    async def _query_refund(self, out_trade_no: str, out_refund_no: str) -> ChannelRefund | None:
        method = "alipay.trade.fastpay.refund.query"
        answer = await self._call(
            method, {"out_trade_no": out_trade_no, "out_request_no": out_refund_no, "query_options": ["gmt_refund_pay"]}
        )
        if not answer.get("refund_amount"):
            # 10000 only says the query ran: a refund Alipay has not made comes back without its details.
            return None
        with _malformed_as(AdapterError, method):
            # Refunds through alipay.trade.refund are synchronous; older answers leave refund_status out for them.
            settled = answer.get("refund_status") in (None, "", "REFUND_SUCCESS")
            return ChannelRefund(
                out_refund_no=out_refund_no,
                out_trade_no=_text(answer, "out_trade_no"),
                amount_fen=yuan_to_fen(_text(answer, "refund_amount")),
                status=RefundStatus.SUCCEEDED if settled else RefundStatus.PROCESSING,
                succeeded_at=_time(answer.get("gmt_refund_pay")) if settled else None,
            )

    def _order(self, answer: Mapping[str, Any]) -> ChannelOrder:
        out_trade_no = _text(answer, "out_trade_no")
        paid_at = _time(answer.get("send_pay_date"))
        status = _order_status(_text(answer, "trade_status"), paid=paid_at is not None)
        remembered = self._memory.orders.get(out_trade_no)
        return ChannelOrder(
            out_trade_no=out_trade_no,
            amount_fen=yuan_to_fen(_text(answer, "total_amount")),
            status=status,
            pay_url=remembered.pay_url if remembered else None,
            transaction_id=_text(answer, "trade_no"),
            paid_at=paid_at if status is ChannelOrderStatus.SUCCESS else None,
        )

    def _unopened(self, out_trade_no: str, *, closing: bool) -> ChannelOrder:
        """An order Alipay does not know yet (ACQ.TRADE_NOT_EXIST), answered from what this process remembers."""
        remembered = self._memory.closed(out_trade_no) if closing else self._memory.orders.get(out_trade_no)
        closed = closing or (remembered is not None and remembered.closed)
        return ChannelOrder(
            out_trade_no=out_trade_no,
            amount_fen=remembered.amount_fen if remembered else 0,
            status=ChannelOrderStatus.CLOSED if closed else ChannelOrderStatus.NOTPAY,
            pay_url=remembered.pay_url if remembered else None,
        )


# --- wire values -----------------------------------------------------------------------------------------------------


@contextmanager
def _malformed_as(error: type[Exception], where: str) -> Iterator[None]:
    """Turn a missing or malformed field of a verified message into `error` (AdapterError or InvalidCallback)."""
    try:
        yield
    except (KeyError, TypeError, ValueError) as exc:
        raise error(f"{where}: malformed field ({exc!r})") from exc


def _order_status(trade_status: str, *, paid: bool) -> ChannelOrderStatus:
    if trade_status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
        return ChannelOrderStatus.SUCCESS
    if trade_status == "WAIT_BUYER_PAY":
        return ChannelOrderStatus.NOTPAY
    if trade_status == "TRADE_CLOSED":
        # Alipay also closes a paid trade once it is refunded in full: it was paid, and refunds are tracked apart.
        return ChannelOrderStatus.SUCCESS if paid else ChannelOrderStatus.CLOSED
    raise ValueError(f"unknown trade_status {trade_status!r}")


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is not a non-empty string")
    return value


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=_BEIJING).astimezone(UTC)


def _beijing(moment: datetime) -> str:
    if moment.tzinfo is None:  # the convention is aware UTC; read a naive value as UTC rather than fail
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(_BEIJING).strftime(_TIME_FORMAT)


def _subject(description: str) -> str:
    # Alipay refuses / = & in a subject and takes at most 256 characters.
    return re.sub(r"[/=&]", " ", description).strip()[:256] or "订单"


def _form(headers: Mapping[str, str], body: bytes) -> dict[str, str]:
    """The notify's parameters, decoded with the charset its Content-Type declares (which the body's own `charset`
    parameter must agree with)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    media_type, _, rest = lowered.get("content-type", "").partition(";")
    if media_type.strip().lower() != "application/x-www-form-urlencoded":
        raise InvalidCallback("notify is not a form post")
    charset = "utf-8"
    # Tolerant of Alipay's `application/x-www-form-urlencoded; text/html; charset=utf-8`.
    for part in rest.split(";"):
        name, equals, value = part.strip().partition("=")
        if equals and name.strip().lower() == "charset":
            charset = value.strip().strip('"')
    try:
        codec = codecs.lookup(charset).name
        pairs = parse_qsl(
            body.decode(codec), keep_blank_values=True, strict_parsing=True, encoding=codec, errors="strict"
        )
        params = dict(pairs)
        declared = codecs.lookup(params.get("charset", codec)).name
    except (LookupError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCallback(f"notify body is not a {charset} form") from exc
    if len(params) != len(pairs):
        raise InvalidCallback("notify repeats a parameter")
    if declared != codec:
        raise InvalidCallback("notify charset disagrees with its Content-Type")
    return params

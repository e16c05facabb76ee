"""WeChat Pay API v3 payment channel for a directly connected merchant (直连商户), in 微信支付公钥 mode.

Every request carries a `WECHATPAY2-SHA256-RSA2048` signature by the merchant key; every response is verified with
WeChat Pay's public key before its body is believed (the bill file is the exception: WeChat Pay does not sign it, so
it is checked against the SHA1 from the signed bill request). Callbacks are verified the same way, refused outside the
replay window and decrypted with the APIv3 key.

Idempotency: WeChat Pay dedupes on the merchant's own numbers, not on a key. Creating an order again with the same
out_trade_no and identical parameters returns the same prepay_id/code_url; refunding with an out_refund_no that exists
returns that refund; closing is idempotent. Callers derive out_trade_no and out_refund_no from the business ids of
their workflow, so a retried activity (same `idempotency_key`) sends the same numbers with the same parameters; the
protocol has no field for the key itself, so it is accepted for the `PaymentChannel` interface and not sent.

Failures: transport errors, timeouts, 5xx, SYSTEM_ERROR, FREQUENCY_LIMITED, an unverifiable response, and a refused
request signature raise `AdapterError` (retryable); WeChat Pay's business refusals raise `AdapterRefusal`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.errors import AdapterError, AdapterRefusal, InvalidCallback
from activities.adapters.payment.statement import StatementNotReady
from activities.adapters.payment.wechatpay_bill import BillFormatError, parse_tradebill
from activities.adapters.payment.wechatpay_signing import (
    VerificationFailed,
    Verifier,
    authorization,
    decrypt_resource,
    jsapi_pay_params,
    load_private_key,
    load_public_key,
)
from core.settings import Settings
from models.billing import ChannelBillLine, ChannelOrder, ChannelOrderStatus, ChannelRefund, PaymentNotice, RefundStatus

_BEIJING = ZoneInfo("Asia/Shanghai")
_USER_AGENT = "qihuang-wechatpay/1"

_TRADE_STATES = {
    "SUCCESS": ChannelOrderStatus.SUCCESS,
    # Paid, then (partly) refunded: still a paid order; the refunds are tracked on their own.
    "REFUND": ChannelOrderStatus.SUCCESS,
    "NOTPAY": ChannelOrderStatus.NOTPAY,
    "USERPAYING": ChannelOrderStatus.NOTPAY,
    # The payer's bank declined: nothing was charged and the bill flow closes the order at its deadline.
    "PAYERROR": ChannelOrderStatus.NOTPAY,
    "CLOSED": ChannelOrderStatus.CLOSED,
    "REVOKED": ChannelOrderStatus.CLOSED,
}
_REFUND_STATES = {
    "SUCCESS": RefundStatus.SUCCEEDED,
    "PROCESSING": RefundStatus.PROCESSING,
    "CLOSED": RefundStatus.FAILED,
    "ABNORMAL": RefundStatus.FAILED,
}
_RETRYABLE = frozenset(
    {
        "SYSTEM_ERROR",
        "SYSTEMERROR",
        "FREQUENCY_LIMITED",
        "USER_PAYING",
        "USERPAYING",
        # A refused request signature is a deployment fault (key or serial number), not a decision about this
        # payment; retrying keeps the flows alive until the key is fixed, and the failing activities alert operators.
        "SIGN_ERROR",
    }
)
# WeChat Pay reports several distinct refusals as INVALID_REQUEST and tells them apart only by the message.
_INVALID_REQUEST_REASONS = (
    ("可退金额", "REFUND_EXCEEDS_PAID", "退款金额超过订单可退金额"),
    ("与之前请求不一致", "OUT_REFUND_NO_USED", "退款单号已被使用，且订单或金额不一致"),
    ("订单号重复", "OUT_TRADE_NO_USED", "商户订单号已被使用，且下单参数不一致"),
)


class WechatPayChannel:
    name = "wechatpay"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        # WeChat Pay holds all order and refund state, so this adapter keeps nothing in our database.
        del sessions
        required = {
            "QIHUANG_WECHATPAY_MCH_ID": settings.wechatpay_mch_id,
            "QIHUANG_WECHATPAY_APPID": settings.wechatpay_appid,
            "QIHUANG_WECHATPAY_MERCHANT_SERIAL_NO": settings.wechatpay_merchant_serial_no,
            "QIHUANG_WECHATPAY_PRIVATE_KEY_PATH": settings.wechatpay_private_key_path,
            "QIHUANG_WECHATPAY_PUBLIC_KEY_PATH": settings.wechatpay_public_key_path,
            "QIHUANG_WECHATPAY_PUBLIC_KEY_ID": settings.wechatpay_public_key_id,
            "QIHUANG_WECHATPAY_NOTIFY_URL": settings.wechatpay_notify_url,
        }
        unset = [name for name, value in required.items() if not value]
        if unset:
            raise ValueError(f"the wechatpay payment adapter needs {', '.join(unset)}")
        self._apiv3_key = settings.wechatpay_apiv3_key.encode()
        if len(self._apiv3_key) != 32:
            raise ValueError("QIHUANG_WECHATPAY_APIV3_KEY must be 32 bytes")
        self._settings = settings
        self._key = load_private_key(settings.wechatpay_private_key_path)
        self._verifier = Verifier(
            public_key=load_public_key(settings.wechatpay_public_key_path),
            public_key_id=settings.wechatpay_public_key_id,
            window_s=settings.wechatpay_replay_window_s,
        )
        self._base_url = settings.wechatpay_base_url.rstrip("/")
        self._origin = httpx.URL(self._base_url)
        self._client = client or httpx.AsyncClient(timeout=settings.wechatpay_timeout_s)
        self._owns_client = client is None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # --- the channel API -------------------------------------------------------------------------------------------

    async def create_order(
        self,
        *,
        idempotency_key: str,
        out_trade_no: str,
        amount_fen: int,
        description: str,
        expires_at: datetime,
        payer_openid: str | None = None,
    ) -> ChannelOrder:
        """JSAPI prepay when the pay mode is jsapi and the payer's openid is known (open the cashier with
        `jsapi_pay_params(prepay_id)`), otherwise a Native order whose code_url (a QR code's text) is the pay_url."""
        if amount_fen <= 0:
            raise AdapterRefusal("INVALID_AMOUNT", "支付金额必须大于零")
        if expires_at.tzinfo is None:  # the convention is aware UTC; read a naive value as UTC rather than fail
            expires_at = expires_at.replace(tzinfo=UTC)
        jsapi = self._settings.wechatpay_pay_mode == "jsapi" and bool(payer_openid)
        body: dict[str, Any] = {
            "appid": self._settings.wechatpay_appid,
            "mchid": self._settings.wechatpay_mch_id,
            "description": description,
            "out_trade_no": out_trade_no,
            # Whole seconds: WeChat Pay compares a repeated order's parameters, and a retry must match exactly.
            "time_expire": expires_at.astimezone(_BEIJING).replace(microsecond=0).isoformat(),
            "notify_url": self._settings.wechatpay_notify_url,
            "amount": {"total": amount_fen, "currency": "CNY"},
        }
        if jsapi:
            body["payer"] = {"openid": payer_openid}
        try:
            answer = await self._call("POST", "/v3/pay/transactions/" + ("jsapi" if jsapi else "native"), body)
        except AdapterRefusal as refusal:
            # A retry that arrives after the order was paid or closed: answer with the order as it is now.
            if refusal.code in ("ORDERPAID", "ORDER_CLOSED"):
                return await self.query_order(out_trade_no=out_trade_no)
            raise
        prepay_id, code_url = answer.get("prepay_id"), answer.get("code_url")
        if not isinstance(prepay_id if jsapi else code_url, str):
            raise AdapterError("WeChat Pay answered an order without prepay_id/code_url")
        return ChannelOrder(
            out_trade_no=out_trade_no,
            amount_fen=amount_fen,
            status=ChannelOrderStatus.NOTPAY,
            prepay_id=prepay_id if jsapi else None,
            pay_url=None if jsapi else code_url,
        )

    def jsapi_pay_params(self, prepay_id: str) -> dict[str, str]:
        """The signed parameters the patient's WeChat client needs to pay a JSAPI order (fresh on every call)."""
        return jsapi_pay_params(appid=self._settings.wechatpay_appid, key=self._key, prepay_id=prepay_id)

    async def query_order(self, *, out_trade_no: str) -> ChannelOrder:
        answer = await self._call("GET", f"/v3/pay/transactions/out-trade-no/{_segment(out_trade_no)}{self._mchid()}")
        try:
            return _order(answer)
        except (KeyError, TypeError, ValueError) as exc:
            raise AdapterError(f"WeChat Pay answered an unreadable order: {exc}") from exc

    async def close_order(self, *, idempotency_key: str, out_trade_no: str) -> ChannelOrder:
        path = f"/v3/pay/transactions/out-trade-no/{_segment(out_trade_no)}/close"
        try:
            await self._call("POST", path, {"mchid": self._settings.wechatpay_mch_id}, expect=204)
        except AdapterRefusal as refusal:
            # Paid meanwhile (or closed already): report the order as it is, never fail, as the Protocol asks.
            if refusal.code not in ("ORDERPAID", "ORDER_CLOSED"):
                raise
        return await self.query_order(out_trade_no=out_trade_no)

    async def refund(
        self, *, idempotency_key: str, out_trade_no: str, out_refund_no: str, amount_fen: int, reason: str
    ) -> ChannelRefund:
        if amount_fen <= 0:
            raise AdapterRefusal("INVALID_AMOUNT", "退款金额必须大于零")
        # WeChat Pay wants the order's total with every refund; the order also tells us whether it was paid at all.
        order = await self.query_order(out_trade_no=out_trade_no)
        if order.status != ChannelOrderStatus.SUCCESS:
            raise AdapterRefusal("ORDER_NOT_PAID", "订单未支付，无法退款")
        body: dict[str, Any] = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "reason": reason,
            "amount": {"refund": amount_fen, "total": order.amount_fen, "currency": "CNY"},
        }
        if self._settings.wechatpay_refund_notify_url:
            body["notify_url"] = self._settings.wechatpay_refund_notify_url
        return _refund_from_answer(await self._call("POST", "/v3/refund/domestic/refunds", body))

    async def query_refund(self, *, out_trade_no: str, out_refund_no: str) -> ChannelRefund:
        # WeChat Pay finds a refund by its own number alone.
        return _refund_from_answer(await self._call("GET", f"/v3/refund/domestic/refunds/{_segment(out_refund_no)}"))

    def parse_payment_notice(self, headers: Mapping[str, str], body: bytes) -> PaymentNotice:
        resource = self._open_notice(headers, body, event_prefix="TRANSACTION.")
        if resource.get("appid") != self._settings.wechatpay_appid:
            raise InvalidCallback("payment notice for another appid")
        try:
            order = _order(resource)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidCallback(f"payment notice is unreadable: {exc}") from exc
        return PaymentNotice(
            out_trade_no=order.out_trade_no,
            status=order.status,
            amount_fen=order.amount_fen,
            transaction_id=order.transaction_id,
            paid_at=order.paid_at,
        )

    def parse_refund_notice(self, headers: Mapping[str, str], body: bytes) -> ChannelRefund:
        """Verify and decode a `REFUND.*` callback; raise `InvalidCallback` if it does not verify."""
        resource = self._open_notice(headers, body, event_prefix="REFUND.")
        try:
            return _refund(resource, status_field="refund_status")
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidCallback(f"refund notice is unreadable: {exc}") from exc

    async def download_bill(self, *, bill_date: date) -> list[ChannelBillLine]:
        """The day's trade bill (Beijing date), payments and refunds. Ready after about 10:00 the next day; before
        that WeChat Pay answers STATEMENT_CREATING, raised as `StatementNotReady`."""
        try:
            answer = await self._call("GET", f"/v3/bill/tradebill?bill_date={bill_date.isoformat()}&bill_type=ALL")
        except AdapterRefusal as refusal:
            if refusal.code == "NO_STATEMENT_EXIST":  # no payment or refund that day
                return []
            raise
        if answer.get("hash_type") != "SHA1" or not isinstance(answer.get("hash_value"), str):
            raise AdapterError(f"WeChat Pay offered a bill with hash {answer.get('hash_type')!r}")
        url = httpx.URL(str(answer.get("download_url", "")))
        # The download is signed with our key: never send that to a host other than WeChat Pay's.
        if (url.scheme, url.host, url.port) != (self._origin.scheme, self._origin.host, self._origin.port):
            raise AdapterError(f"WeChat Pay's bill download URL points at another host: {url.host}")
        # WeChat Pay does not sign the file; its SHA1 came in the signed answer above.
        response = await self._send("GET", url)
        if response.status_code != 200:
            raise AdapterError(f"WeChat Pay bill download failed with HTTP {response.status_code}")
        if hashlib.sha1(response.content).hexdigest() != answer["hash_value"].lower():
            raise AdapterError("WeChat Pay bill file does not match its SHA1")
        try:
            return parse_tradebill(response.content)
        except BillFormatError as exc:
            raise AdapterRefusal("BILL_UNREADABLE", f"微信支付账单格式无法识别：{exc}") from exc

    # --- HTTP ------------------------------------------------------------------------------------------------------

    def _mchid(self) -> str:
        return f"?mchid={_segment(self._settings.wechatpay_mch_id)}"

    async def _send(self, method: str, url: httpx.URL, body: Mapping[str, Any] | None = None) -> httpx.Response:
        content = b"" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Accept": "application/json", "User-Agent": _USER_AGENT}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = self._client.build_request(method, url, content=content or None, headers=headers)
        # Sign the path and query exactly as they go on the wire, after httpx has encoded them.
        request.headers["Authorization"] = authorization(
            mchid=self._settings.wechatpay_mch_id,
            serial_no=self._settings.wechatpay_merchant_serial_no,
            key=self._key,
            method=method,
            target=request.url.raw_path.decode("ascii"),
            body=content,
        )
        try:
            return await self._client.send(request)
        except httpx.TransportError as exc:
            raise AdapterError(f"WeChat Pay {method} {url.path}: {type(exc).__name__} {exc}") from exc

    async def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, expect: int = 200
    ) -> dict[str, Any]:
        response = await self._send(method, httpx.URL(self._base_url + path), body)
        where = f"WeChat Pay {method} {path.split('?')[0]}"
        if response.status_code >= 500:  # retryable whatever it says, so there is nothing to verify
            raise AdapterError(f"{where}: HTTP {response.status_code} {response.text[:200]}")
        try:
            self._verifier.verify(response.headers, response.content)
        except VerificationFailed as exc:
            raise AdapterError(f"{where}: response not trusted, {exc}") from exc
        if response.status_code != expect:
            raise _failure(where, response)
        if expect == 204:
            return {}
        try:
            answer = json.loads(response.content)
        except ValueError as exc:
            raise AdapterError(f"{where}: response is not JSON") from exc
        if not isinstance(answer, dict):
            raise AdapterError(f"{where}: response is not a JSON object")
        return answer

    def _open_notice(self, headers: Mapping[str, str], body: bytes, *, event_prefix: str) -> dict[str, Any]:
        try:
            self._verifier.verify(headers, body)
            envelope = json.loads(body)
            if not str(envelope["event_type"]).startswith(event_prefix):
                raise InvalidCallback(f"not a {event_prefix}* notification: {envelope['event_type']}")
            resource = json.loads(decrypt_resource(self._apiv3_key, envelope["resource"]))
        except VerificationFailed as exc:
            raise InvalidCallback(f"WeChat Pay callback refused: {exc}") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidCallback("callback body is not a WeChat Pay notification") from exc
        if not isinstance(resource, dict) or resource.get("mchid") != self._settings.wechatpay_mch_id:
            raise InvalidCallback("notification for another merchant")
        return resource


def _segment(value: str) -> str:
    """A path segment or query value, percent-encoded (merchant numbers may contain `|`, `*` and `@`)."""
    return quote(value, safe="")


def _fen(value: Any) -> int:
    if type(value) is not int:  # bool is an int subclass and a float would hide rounding: neither is an amount
        raise ValueError(f"not an amount in fen: {value!r}")
    return value


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


def _order(data: Mapping[str, Any]) -> ChannelOrder:
    """A transaction (query answer or decrypted payment notice) as a `ChannelOrder`."""
    state = data["trade_state"]
    if state not in _TRADE_STATES:
        raise ValueError(f"unknown trade_state {state!r}")
    status = _TRADE_STATES[state]
    paid = status == ChannelOrderStatus.SUCCESS
    return ChannelOrder(
        out_trade_no=data["out_trade_no"],
        amount_fen=_fen(data["amount"]["total"]),
        status=status,
        transaction_id=data.get("transaction_id") or None,
        paid_at=_time(data.get("success_time")) if paid else None,
    )


def _refund(data: Mapping[str, Any], *, status_field: str) -> ChannelRefund:
    # The refund answer names the state `status`, the refund notice `refund_status`.
    state = data[status_field]
    if state not in _REFUND_STATES:
        raise ValueError(f"unknown refund state {state!r}")
    status = _REFUND_STATES[state]
    return ChannelRefund(
        out_refund_no=data["out_refund_no"],
        out_trade_no=data["out_trade_no"],
        amount_fen=_fen(data["amount"]["refund"]),
        status=status,
        refund_id=data.get("refund_id"),
        succeeded_at=_time(data.get("success_time")) if status == RefundStatus.SUCCEEDED else None,
    )


def _refund_from_answer(answer: Mapping[str, Any]) -> ChannelRefund:
    try:
        return _refund(answer, status_field="status")
    except (KeyError, TypeError, ValueError) as exc:
        raise AdapterError(f"WeChat Pay answered an unreadable refund: {exc}") from exc


def _failure(where: str, response: httpx.Response) -> Exception:
    """The exception for a verified, non-5xx failure answer."""
    try:
        answer = json.loads(response.content)
        code, message = str(answer.get("code") or ""), str(answer.get("message") or "")
    except (ValueError, AttributeError):
        code, message = "", ""
    if code == "STATEMENT_CREATING":  # the day's bill is still being made: reconciliation asks again later
        return StatementNotReady(f"{where}: {code} {message}")
    if response.status_code == 429 or code in _RETRYABLE:
        return AdapterError(f"{where}: HTTP {response.status_code} {code} {message}")
    if code == "INVALID_REQUEST":
        for fragment, normalised, text in _INVALID_REQUEST_REASONS:
            if fragment in message:
                return AdapterRefusal(normalised, text)
    return AdapterRefusal(code or f"HTTP_{response.status_code}", message or "微信支付拒绝了该请求")

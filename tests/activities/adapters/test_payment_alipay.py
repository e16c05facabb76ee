"""The Alipay channel against a local Alipay gateway (`tests/simulators/alipay.py`) over real HTTP."""

from __future__ import annotations

import base64
import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from activities.adapters.errors import AdapterError, AdapterRefusal, InvalidCallback
from activities.adapters.payment.alipay import AlipayChannel
from activities.adapters.payment.alipay_bill import BillFormatError, fen_to_yuan, parse_trade_bill, yuan_to_fen
from activities.adapters.payment.alipay_signing import (
    ResponseShapeError,
    load_private_key,
    notify_sign_content,
    request_sign_content,
    sign,
    split_response,
    verify,
)
from activities.adapters.payment.contract import PaymentChannelContract
from core.settings import Settings
from models.billing import ChannelBillLineKind, ChannelOrderStatus, RefundStatus
from tests.simulators.alipay import BILL_COLUMNS, AlipaySimulator

APP_ID = "2021004100000317"
SELLER_ID = "2088621987654321"
BEIJING = ZoneInfo("Asia/Shanghai")


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_private(path: Path, key: rsa.RSAPrivateKey) -> str:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(path)


def _write_public(path: Path, key: rsa.RSAPublicKey) -> str:
    path.write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(path)


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return _rsa_key()


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("alipay-keys")


@pytest_asyncio.fixture(scope="module")
async def simulator(app_key: rsa.RSAPrivateKey) -> AsyncIterator[AlipaySimulator]:
    sim = AlipaySimulator(app_id=APP_ID, app_public_key=app_key.public_key(), seller_id=SELLER_ID)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture(autouse=True)
def _no_leftover_faults(simulator: AlipaySimulator) -> Iterator[None]:
    yield
    simulator.clear_faults()


@pytest.fixture(scope="module")
def alipay_settings(
    settings: Settings, key_dir: Path, app_key: rsa.RSAPrivateKey, simulator: AlipaySimulator
) -> Settings:
    alipay_public = key_dir / "alipay_public_key.pem"
    alipay_public.write_bytes(simulator.alipay_public_key_pem())
    return settings.model_copy(
        update={
            "alipay_app_id": APP_ID,
            "alipay_app_private_key_path": _write_private(key_dir / "app_private_key.pem", app_key),
            "alipay_public_key_path": str(alipay_public),
            "alipay_gateway_url": simulator.gateway_url,
            "alipay_notify_url": "https://his.example.cn/api/v1/payments/alipay/notify",
            "alipay_return_url": "https://his.example.cn/pay/done",
            "alipay_seller_id": SELLER_ID,
            "alipay_pay_product": "precreate",
        }
    )


@pytest_asyncio.fixture(scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture
def adapter(alipay_settings: Settings, http: httpx.AsyncClient) -> AlipayChannel:
    return AlipayChannel(None, alipay_settings, client=http)


class TestAlipay(PaymentChannelContract):
    pass


# --- helpers ---------------------------------------------------------------------------------------------------------


def later() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=15)


async def new_order(adapter: AlipayChannel, amount_fen: int = 12_345, description: str = "复诊挂号费") -> str:
    out_trade_no = f"ap-{uuid.uuid4().hex[:20]}"
    await adapter.create_order(
        idempotency_key=f"{out_trade_no}:create",
        out_trade_no=out_trade_no,
        amount_fen=amount_fen,
        description=description,
        expires_at=later(),
    )
    return out_trade_no


async def paid_order(adapter: AlipayChannel, simulator: AlipaySimulator, amount_fen: int = 12_345) -> str:
    out_trade_no = await new_order(adapter, amount_fen)
    adapter.parse_payment_notice(*await simulator.simulate_payment(out_trade_no))
    return out_trade_no


async def refund(adapter: AlipayChannel, out_trade_no: str, out_refund_no: str, amount_fen: int) -> Any:
    return await adapter.refund(
        idempotency_key=out_refund_no,
        out_trade_no=out_trade_no,
        out_refund_no=out_refund_no,
        amount_fen=amount_fen,
        reason="患者取消复诊",
    )


def with_params(body: bytes, **changes: str) -> bytes:
    """The form body with some values replaced and the rest (sign included) kept."""
    params = dict(parse_qsl(body.decode("ascii"), keep_blank_values=True))
    return urlencode({**params, **changes}).encode("ascii")


# --- signatures ------------------------------------------------------------------------------------------------------


def test_request_sign_content_sorts_and_skips_empty_values_and_sign() -> None:
    params = {
        "method": "alipay.trade.query",
        "app_id": APP_ID,
        "sign": "c2lnbg==",
        "notify_url": "",
        "biz_content": '{"out_trade_no":"挂号&1=2"}',
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": "2025-01-02 03:04:05",
    }
    assert request_sign_content(params) == (
        f'app_id={APP_ID}&biz_content={{"out_trade_no":"挂号&1=2"}}&charset=utf-8&method=alipay.trade.query'
        "&sign_type=RSA2&timestamp=2025-01-02 03:04:05"
    )
    # A notify leaves out sign_type as well, and keeps empty values.
    assert notify_sign_content(params) == (
        f'app_id={APP_ID}&biz_content={{"out_trade_no":"挂号&1=2"}}&charset=utf-8&method=alipay.trade.query'
        "&notify_url=&timestamp=2025-01-02 03:04:05"
    )


def test_rsa2_is_sha256_with_rsa_pkcs1_v15(app_key: rsa.RSAPrivateKey) -> None:
    content = "a=1&b=中文"
    signature = sign(app_key, content)
    # Checked with the primitive directly, not with our own verify.
    app_key.public_key().verify(
        base64.b64decode(signature), content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256()
    )
    assert verify(app_key.public_key(), content, signature)
    assert not verify(app_key.public_key(), content + "&c=3", signature)
    assert not verify(app_key.public_key(), content, "not base64!")


def test_keys_load_from_pem_and_from_bare_base64(tmp_path: Path, app_key: rsa.RSAPrivateKey) -> None:
    der = app_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    bare = tmp_path / "bare.txt"
    bare.write_text(base64.b64encode(der).decode("ascii"))
    assert load_private_key(str(bare)).private_numbers() == app_key.private_numbers()
    pkcs1 = tmp_path / "pkcs1.pem"
    pkcs1.write_bytes(
        app_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    assert load_private_key(str(pkcs1)).private_numbers() == app_key.private_numbers()


def test_split_response_returns_the_exact_signed_text() -> None:
    inner = '{ "code" : "10000", "msg":"Success", "note":"a } \\" , {", "zh":"\\u4e2d文"}'
    body = f'{{"sign":"c2ln", "alipay_trade_query_response" : {inner} ,"alipay_cert_sn":"x"}}'
    assert split_response(body, "alipay.trade.query") == (inner, "c2ln")
    # The gateway answers error_response when a request never reaches the method; unsigned answers have no sign.
    assert split_response('{"error_response":{"code":"40002"}}', "alipay.trade.query") == ('{"code":"40002"}', None)
    for broken in (
        '{"alipay_trade_query_response":{},"alipay_trade_query_response":{},"sign":"x"}',
        '{"other_response":{},"sign":"x"}',
        '{"alipay_trade_query_response":{}} trailing',
        "[1, 2]",
    ):
        with pytest.raises(ResponseShapeError):
            split_response(broken, "alipay.trade.query")


async def test_every_request_carries_the_common_parameters(
    adapter: AlipayChannel, simulator: AlipaySimulator, alipay_settings: Settings
) -> None:
    expires_at = datetime(2031, 5, 6, 1, 2, 3, tzinfo=UTC)
    out_trade_no = f"ap-{uuid.uuid4().hex[:20]}"
    await adapter.create_order(
        idempotency_key="k", out_trade_no=out_trade_no, amount_fen=123_45, description="处方费", expires_at=expires_at
    )
    sent = simulator.received[-1]
    assert {name: sent[name] for name in ("app_id", "method", "format", "charset", "sign_type", "version")} == {
        "app_id": APP_ID,
        "method": "alipay.trade.precreate",
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "version": "1.0",
    }
    assert sent["notify_url"] == alipay_settings.alipay_notify_url
    sent_at = datetime.strptime(sent["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    assert abs(datetime.now(UTC) - sent_at) < timedelta(minutes=1)
    biz = json.loads(sent["biz_content"])
    assert biz == {
        "out_trade_no": out_trade_no,
        "total_amount": "123.45",
        "subject": "处方费",
        "time_expire": "2031-05-06 09:02:03",  # Beijing time
        "product_code": "FACE_TO_FACE_PAYMENT",
    }
    public_key = load_private_key(alipay_settings.alipay_app_private_key_path).public_key()
    assert verify(public_key, request_sign_content(sent), sent["sign"])


async def test_a_request_the_gateway_cannot_verify_fails_retryably(
    alipay_settings: Settings, http: httpx.AsyncClient, key_dir: Path
) -> None:
    wrong = _write_private(key_dir / "another_app_key.pem", _rsa_key())
    impostor = AlipayChannel(
        None, alipay_settings.model_copy(update={"alipay_app_private_key_path": wrong}), client=http
    )
    with pytest.raises(AdapterError, match=r"isv\.invalid-signature.*unsigned answer"):
        await new_order(impostor)


async def test_answers_not_signed_by_alipay_are_refused(
    alipay_settings: Settings, http: httpx.AsyncClient, key_dir: Path
) -> None:
    other = _write_public(key_dir / "not_alipay.pem", _rsa_key().public_key())
    fooled = AlipayChannel(None, alipay_settings.model_copy(update={"alipay_public_key_path": other}), client=http)
    with pytest.raises(AdapterError, match="signature does not verify"):
        await new_order(fooled)


async def test_a_tampered_answer_is_refused(adapter: AlipayChannel, simulator: AlipaySimulator) -> None:
    out_trade_no = await paid_order(adapter, simulator)
    simulator.tamper_next()
    with pytest.raises(AdapterError, match="signature does not verify"):
        await adapter.query_order(out_trade_no=out_trade_no)
    assert (await adapter.query_order(out_trade_no=out_trade_no)).status is ChannelOrderStatus.SUCCESS


# --- async notifies --------------------------------------------------------------------------------------------------


async def test_notify_amounts_convert_to_fen_exactly(adapter: AlipayChannel, simulator: AlipaySimulator) -> None:
    for amount_fen in (1, 10, 123_456, 10_000_000_000):
        out_trade_no = await new_order(adapter, amount_fen)
        headers, body = await simulator.simulate_payment(out_trade_no)
        assert ("total_amount", fen_to_yuan(amount_fen)) in parse_qsl(body.decode("ascii"))
        notice = adapter.parse_payment_notice(headers, body)
        assert (notice.amount_fen, notice.status) == (amount_fen, ChannelOrderStatus.SUCCESS)
        assert notice.paid_at is not None and notice.paid_at.tzinfo is not None


async def test_forged_notifies_are_refused(adapter: AlipayChannel, simulator: AlipaySimulator) -> None:
    out_trade_no = await new_order(adapter, 123_45)
    headers, body = await simulator.simulate_payment(out_trade_no)
    adapter.parse_payment_notice(headers, body)
    signature = dict(parse_qsl(body.decode("ascii")))["sign"]
    forged = [
        with_params(body, total_amount="1.00"),  # amount changed, Alipay's signature kept
        with_params(body, trade_status="TRADE_SUCCESS", out_trade_no="ap-someone-else"),
        with_params(body, sign=signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")),
        with_params(body, sign_type="RSA"),
        with_params(body, sign=""),
        # Signed by Alipay, but for another app or another merchant.
        simulator.notify(out_trade_no, app_id="2021009999999999")[1],
        simulator.notify(out_trade_no, seller_id="2088000000000001")[1],
    ]
    for forged_body in forged:
        with pytest.raises(InvalidCallback):
            adapter.parse_payment_notice(headers, forged_body)
    for wrong_headers in (
        {},
        {"Content-Type": "application/json"},
        {"Content-Type": "application/x-www-form-urlencoded; charset=gbk"},
    ):
        with pytest.raises(InvalidCallback):
            adapter.parse_payment_notice(wrong_headers, body)


async def test_notify_accepts_alipays_own_content_type(adapter: AlipayChannel, simulator: AlipaySimulator) -> None:
    out_trade_no = await new_order(adapter)
    _, body = await simulator.simulate_payment(out_trade_no)
    headers = {"content-type": "application/x-www-form-urlencoded; text/html; charset=UTF-8"}
    assert adapter.parse_payment_notice(headers, body).out_trade_no == out_trade_no


async def test_closed_trade_notify_reads_closed(adapter: AlipayChannel, simulator: AlipaySimulator) -> None:
    out_trade_no = await new_order(adapter)
    simulator.scan(out_trade_no)
    await adapter.close_order(idempotency_key="close", out_trade_no=out_trade_no)
    notice = adapter.parse_payment_notice(*simulator.notify(out_trade_no))
    assert (notice.status, notice.paid_at) == (ChannelOrderStatus.CLOSED, None)


# --- orders ----------------------------------------------------------------------------------------------------------


async def test_same_order_number_with_another_amount_is_refused(adapter: AlipayChannel) -> None:
    out_trade_no = await new_order(adapter, 100)
    with pytest.raises(AdapterRefusal) as refused:
        await adapter.create_order(
            idempotency_key="other", out_trade_no=out_trade_no, amount_fen=200, description="挂号费", expires_at=later()
        )
    assert refused.value.code == "OUT_TRADE_NO_USED"


async def test_create_retried_after_payment_answers_paid(adapter: AlipayChannel, simulator: AlipaySimulator) -> None:
    out_trade_no = await paid_order(adapter, simulator, 500)
    again = await adapter.create_order(
        idempotency_key="again", out_trade_no=out_trade_no, amount_fen=500, description="挂号费", expires_at=later()
    )
    assert again.status is ChannelOrderStatus.SUCCESS and again.transaction_id
    assert await simulator.charges(out_trade_no) == 1


async def test_close_of_a_scanned_unpaid_order(adapter: AlipayChannel, simulator: AlipaySimulator) -> None:
    out_trade_no = await new_order(adapter, 888)
    simulator.scan(out_trade_no)
    opened = await adapter.query_order(out_trade_no=out_trade_no)
    assert (opened.status, opened.amount_fen) == (ChannelOrderStatus.NOTPAY, 888) and opened.transaction_id
    closed = await adapter.close_order(idempotency_key="close", out_trade_no=out_trade_no)
    assert (closed.status, closed.amount_fen) == (ChannelOrderStatus.CLOSED, 888)
    again = await adapter.close_order(idempotency_key="close", out_trade_no=out_trade_no)
    assert again.status is ChannelOrderStatus.CLOSED
    with pytest.raises(AdapterRefusal):
        await simulator.simulate_payment(out_trade_no)


async def test_an_unopened_order_is_unknown_to_alipay(
    adapter: AlipayChannel, simulator: AlipaySimulator, alipay_settings: Settings, http: httpx.AsyncClient
) -> None:
    out_trade_no = await new_order(adapter, 300)
    closed = await adapter.close_order(idempotency_key="close", out_trade_no=out_trade_no)
    assert (closed.status, closed.amount_fen) == (ChannelOrderStatus.CLOSED, 300)
    # Alipay answers ACQ.TRADE_NOT_EXIST before and after: another process can say neither amount nor closure.
    elsewhere = AlipayChannel(None, alipay_settings, client=http)
    unknown = await elsewhere.query_order(out_trade_no=out_trade_no)
    assert (unknown.status, unknown.amount_fen) == (ChannelOrderStatus.NOTPAY, 0)
    assert (await elsewhere.close_order(idempotency_key="c", out_trade_no=out_trade_no)).status == "CLOSED"
    with pytest.raises(AdapterRefusal):
        await simulator.simulate_payment(out_trade_no)


async def test_wap_pay_url_is_a_signed_gateway_url(
    alipay_settings: Settings, http: httpx.AsyncClient, simulator: AlipaySimulator
) -> None:
    wap = AlipayChannel(None, alipay_settings.model_copy(update={"alipay_pay_product": "wap"}), client=http)
    out_trade_no = f"ap-{uuid.uuid4().hex[:20]}"
    order = await wap.create_order(
        idempotency_key="k", out_trade_no=out_trade_no, amount_fen=1, description="挂号费", expires_at=later()
    )
    assert order.pay_url and order.pay_url.startswith(simulator.gateway_url + "?")
    params = dict(parse_qsl(urlsplit(order.pay_url).query))
    assert params["method"] == "alipay.trade.wap.pay"
    assert params["return_url"] == alipay_settings.alipay_return_url
    assert json.loads(params["biz_content"])["product_code"] == "QUICK_WAP_WAY"
    # A URL altered on the way does not verify at the gateway, so it creates nothing to pay.
    forged = params | {"biz_content": params["biz_content"].replace('"0.01"', '"0.02"')}
    assert (await http.get(simulator.gateway_url, params=forged)).status_code == 400
    with pytest.raises(AdapterRefusal):
        await simulator.simulate_payment(out_trade_no)
    page = await http.get(order.pay_url)
    assert page.status_code == 200 and "挂号费" in page.text
    notice = wap.parse_payment_notice(*await simulator.simulate_payment(out_trade_no))
    assert (notice.status, notice.amount_fen) == (ChannelOrderStatus.SUCCESS, 1)


# --- refunds ---------------------------------------------------------------------------------------------------------


async def test_partial_refunds_add_up_to_the_fen(adapter: AlipayChannel, simulator: AlipaySimulator) -> None:
    out_trade_no = await paid_order(adapter, simulator, 123_456)
    tag = uuid.uuid4().hex[:8]
    amounts = {f"rf-{tag}-1": 1, f"rf-{tag}-2": 123_454, f"rf-{tag}-3": 1}
    for n, (out_refund_no, amount_fen) in enumerate(amounts.items()):
        if n == 2:  # one fen is left: two are refused
            with pytest.raises(AdapterRefusal) as refused:
                await refund(adapter, out_trade_no, f"rf-{tag}-x", 2)
            assert refused.value.code == "REFUND_EXCEEDS_PAID"
        done = await refund(adapter, out_trade_no, out_refund_no, amount_fen)
        assert (done.amount_fen, done.status) == (amount_fen, RefundStatus.SUCCEEDED)
        assert done.succeeded_at is not None
    with pytest.raises(AdapterRefusal):  # refunded in full, Alipay has closed the trade
        await refund(adapter, out_trade_no, f"rf-{tag}-4", 1)
    with pytest.raises(AdapterRefusal) as refused:
        await refund(adapter, out_trade_no, f"rf-{tag}-2", 123_455)  # a known refund number, another amount
    assert refused.value.code == "OUT_REFUND_NO_USED"
    for out_refund_no, amount_fen in amounts.items():
        queried = await adapter.query_refund(out_trade_no=out_trade_no, out_refund_no=out_refund_no)
        assert (queried.out_trade_no, queried.amount_fen, queried.status) == (
            out_trade_no,
            amount_fen,
            RefundStatus.SUCCEEDED,
        )
    # Refunded in full, the trade reads closed at Alipay, but it was paid: it stays SUCCESS for us.
    assert (await adapter.query_order(out_trade_no=out_trade_no)).status is ChannelOrderStatus.SUCCESS
    # A retry of the first refund moves no money again.
    again = await refund(adapter, out_trade_no, f"rf-{tag}-1", 1)
    assert (again.amount_fen, again.status) == (1, RefundStatus.SUCCEEDED)
    assert simulator.refunded_fen(out_trade_no) == 123_456


async def test_refund_query_without_a_refund(
    adapter: AlipayChannel, simulator: AlipaySimulator, alipay_settings: Settings, http: httpx.AsyncClient
) -> None:
    out_trade_no = await paid_order(adapter, simulator, 1_000)
    out_refund_no = f"rf-{uuid.uuid4().hex[:12]}"
    with pytest.raises(AdapterRefusal):
        await refund(adapter, out_trade_no, out_refund_no, 1_001)
    with pytest.raises(AdapterRefusal) as refused:
        await adapter.query_refund(out_trade_no=out_trade_no, out_refund_no=out_refund_no)
    assert refused.value.code == "REFUND_NOT_EXIST"
    # Another process (another worker) finds a refund as well as the one that asked for it.
    other = AlipayChannel(None, alipay_settings, client=http)
    with pytest.raises(AdapterRefusal):
        await other.query_refund(out_trade_no=out_trade_no, out_refund_no=out_refund_no)


async def test_refund_refusals_keep_their_meaning(adapter: AlipayChannel, simulator: AlipaySimulator) -> None:
    out_trade_no = await new_order(adapter)
    simulator.scan(out_trade_no)
    with pytest.raises(AdapterRefusal) as refused:
        await refund(adapter, out_trade_no, f"rf-{uuid.uuid4().hex[:12]}", 1)
    assert refused.value.code == "ORDER_NOT_PAID"
    paid = await paid_order(adapter, simulator)
    simulator.refuse_next(sub_code="ACQ.SELLER_BALANCE_NOT_ENOUGH", sub_msg="卖家余额不足")
    with pytest.raises(AdapterRefusal) as refused:
        await refund(adapter, paid, f"rf-{uuid.uuid4().hex[:12]}", 1)
    assert refused.value.code == "SELLER_BALANCE_NOT_ENOUGH" and "余额不足" in refused.value.message


# --- failures a retry may fix ----------------------------------------------------------------------------------------


async def test_gateway_failures_are_retryable(adapter: AlipayChannel, simulator: AlipaySimulator) -> None:
    out_trade_no = await paid_order(adapter, simulator)
    simulator.unavailable_next()
    with pytest.raises(AdapterError, match="20000"):
        await adapter.query_order(out_trade_no=out_trade_no)
    simulator.fail_next(status=500)
    with pytest.raises(AdapterError, match="HTTP 500"):
        await adapter.query_order(out_trade_no=out_trade_no)
    simulator.fail_next(status=502)
    with pytest.raises(AdapterError, match="HTTP 502"):
        await adapter.query_order(out_trade_no=out_trade_no)
    simulator.refuse_next(sub_code="ACQ.SYSTEM_ERROR", sub_msg="系统异常")
    with pytest.raises(AdapterError, match=r"ACQ\.SYSTEM_ERROR"):
        await adapter.query_order(out_trade_no=out_trade_no)
    assert (await adapter.query_order(out_trade_no=out_trade_no)).status is ChannelOrderStatus.SUCCESS


async def test_a_slow_gateway_times_out_retryably(alipay_settings: Settings, simulator: AlipaySimulator) -> None:
    async with httpx.AsyncClient(timeout=1.0) as impatient:
        adapter = AlipayChannel(None, alipay_settings, client=impatient)
        simulator.delay_next(seconds=2.0)
        with pytest.raises(AdapterError, match="timed out"):
            await new_order(adapter)


def test_the_channel_needs_its_settings(settings: Settings) -> None:
    with pytest.raises(ValueError, match="QIHUANG_ALIPAY_APP_ID"):
        AlipayChannel(None, settings)


# --- bills -----------------------------------------------------------------------------------------------------------


async def test_bill_download_is_fen_exact(adapter: AlipayChannel, simulator: AlipaySimulator) -> None:
    cheap = await paid_order(adapter, simulator, 1)
    dear = await paid_order(adapter, simulator, 123_456)
    out_refund_no = f"rf-{uuid.uuid4().hex[:12]}"
    await refund(adapter, dear, out_refund_no, 1)
    paid_at = simulator.paid_at(dear)
    assert paid_at is not None
    lines = await adapter.download_bill(bill_date=paid_at.astimezone(BEIJING).date())
    ours = {(line.kind, line.out_trade_no): line for line in lines if line.out_trade_no in (cheap, dear)}
    assert set(ours) == {
        (ChannelBillLineKind.PAYMENT, cheap),
        (ChannelBillLineKind.PAYMENT, dear),
        (ChannelBillLineKind.REFUND, dear),
    }
    assert ours[(ChannelBillLineKind.PAYMENT, cheap)].amount_fen == 1
    payment = ours[(ChannelBillLineKind.PAYMENT, dear)]
    assert (payment.amount_fen, payment.fee_fen, payment.status) == (123_456, 741, "交易")  # 0.6% of 1234.56, half up
    assert abs(payment.occurred_at - paid_at) < timedelta(seconds=1)
    refunded = ours[(ChannelBillLineKind.REFUND, dear)]
    assert (refunded.amount_fen, refunded.out_refund_no) == (1, out_refund_no)
    assert (
        refunded.transaction_id
        == payment.transaction_id
        == (await adapter.query_order(out_trade_no=dear)).transaction_id
    )


async def test_a_day_without_a_bill_is_refused(adapter: AlipayChannel) -> None:
    with pytest.raises(AdapterRefusal) as refused:
        await adapter.download_bill(bill_date=date(2001, 1, 1))
    assert refused.value.code == "BILL_NOT_EXIST"


def _bill(rows: list[str], footer: list[str]) -> bytes:
    dashes = "-" * 41
    text = "\r\n".join(
        [
            "#支付宝业务明细查询",
            "#账号：[20886219876543210156]",
            f"#{dashes}业务明细列表{dashes}",
            BILL_COLUMNS,
            *rows,
            f"#{dashes}业务明细列表结束{dashes}",
            *footer,
            "#导出时间：[2025年03月02日 10:12:13]",
        ]
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("20886219876543210156_20250301_summary.csv", "#业务汇总列表\r\n合计,1".encode("gbk"))
        bundle.writestr("20886219876543210156_20250301_detail.csv", text.encode("gbk"))
    return buffer.getvalue()


def _row(values: list[str]) -> str:
    return ",".join(f"{value}\t" for value in values)


def test_bill_parser_reads_gbk_lines_exactly() -> None:
    blank = ["", "", "", ""]
    pay = _row(
        ["2025030122001100100000000001", "HZ-0001", "交易", "中药饮片（七剂）", "2025-03-01 09:00:00",
         "2025-03-01 09:00:30", *blank, "刘*(138****8888)", "1234.56", "1234.56", *["0.00"] * 5, "", "0.00", "0.00",
         "", "7.41", "0.00", "备注，含逗号"]
    )  # fmt: skip
    tiny = _row(
        ["2025030122001100100000000002", "HZ-0002", "交易", "挂号费", "2025-03-01 23:59:59", "2025-03-01 23:59:59",
         *blank, "", "0.01", "0.01", *["0.00"] * 5, "", "0.00", "0.00", "", "0.00", "0.00", ""]
    )  # fmt: skip
    back = _row(
        ["2025030122001100100000000001", "HZ-0001", "退款", "中药饮片（七剂）", "2025-03-01 09:00:00",
         "2025-03-01 12:00:00", *blank, "", "1234.56", "-1234.56", *["0.00"] * 5, "", "0.00", "0.00", "HZ-0001-r1",
         "-7.41", "0.00", ""]
    )  # fmt: skip
    footer = ["#交易合计：2笔，商家实收共1234.57元，商家优惠共0.00元", "#退款合计：1笔，商家实收退款共-1234.56元"]
    lines = parse_trade_bill(_bill([pay, tiny, back], footer))
    assert [(line.kind, line.out_trade_no, line.amount_fen, line.fee_fen) for line in lines] == [
        (ChannelBillLineKind.PAYMENT, "HZ-0001", 123_456, 741),
        (ChannelBillLineKind.PAYMENT, "HZ-0002", 1, 0),
        (ChannelBillLineKind.REFUND, "HZ-0001", 123_456, 741),
    ]
    assert lines[2].out_refund_no == "HZ-0001-r1" and lines[0].out_refund_no is None
    assert lines[1].occurred_at == datetime(2025, 3, 1, 15, 59, 59, tzinfo=UTC)
    with pytest.raises(BillFormatError, match="footer counts"):
        parse_trade_bill(_bill([pay, tiny], footer))
    with pytest.raises(BillFormatError):
        parse_trade_bill(b"not a zip")


def test_yuan_and_fen_convert_exactly() -> None:
    assert [yuan_to_fen(text) for text in ("0.01", "1234.56", "20", "0.1", "-0.01", "99999999.99")] == [
        1,
        123_456,
        2_000,
        10,
        -1,
        9_999_999_999,
    ]
    assert [fen_to_yuan(fen) for fen in (1, 10, 123_456, 0)] == ["0.01", "0.10", "1234.56", "0.00"]
    for bad in ("1.234", "1e2", " 1.00", "1,00", "", "NaN"):
        with pytest.raises(ValueError):
            yuan_to_fen(bad)

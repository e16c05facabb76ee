"""The WeChat Pay v3 channel against a local simulator of WeChat Pay's servers, over real HTTP.

Keys are generated per run: the merchant's API key pair (the simulator knows its public half) and the "platform" key
pair WeChat Pay signs with (the adapter knows its public half and id). No database is needed.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.errors import AdapterError, AdapterRefusal, InvalidCallback
from activities.adapters.payment.contract import PaymentChannelContract
from activities.adapters.payment.statement import StatementNotReady
from activities.adapters.payment.wechatpay import WechatPayChannel
from activities.adapters.payment.wechatpay_bill import BillFormatError, fee_to_fen, parse_tradebill, yuan_to_fen
from activities.adapters.payment.wechatpay_signing import authorization
from core.settings import Settings
from models.billing import ChannelBillLineKind, ChannelOrder, ChannelOrderStatus, ChannelRefund, RefundStatus
from tests.simulators.wechatpay import WechatPaySimulator

MCH_ID = "1900000109"
APPID = "wxd678efh567hg6787"
MERCHANT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
PUBLIC_KEY_ID = "PUB_KEY_ID_0119000001092025010100000000000001"
APIV3_KEY = "Qh7x2JmR9vL4pT8wK3nB6cY1sD5fG0aZ"
NOTIFY_URL = "https://hospital.example.cn/api/v1/payments/wechatpay/notify"
BEIJING = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Keys:
    merchant: rsa.RSAPrivateKey
    merchant_path: Path
    platform: rsa.RSAPrivateKey
    platform_public_path: Path
    # A second key pair, for impostors on either side.
    stranger: rsa.RSAPrivateKey
    stranger_path: Path
    stranger_public_path: Path


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_private(key: rsa.RSAPrivateKey, path: Path) -> Path:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    return path


def _write_public(key: rsa.RSAPrivateKey, path: Path) -> Path:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path.write_bytes(pem)
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("wechatpay-keys")
    merchant, platform, stranger = _rsa(), _rsa(), _rsa()
    return Keys(
        merchant=merchant,
        merchant_path=_write_private(merchant, folder / "apiclient_key.pem"),
        platform=platform,
        platform_public_path=_write_public(platform, folder / "pub_key.pem"),
        stranger=stranger,
        stranger_path=_write_private(stranger, folder / "stranger_key.pem"),
        stranger_public_path=_write_public(stranger, folder / "stranger_pub_key.pem"),
    )


def _simulator(keys: Keys, platform: rsa.RSAPrivateKey | None = None) -> WechatPaySimulator:
    return WechatPaySimulator(
        mch_id=MCH_ID,
        appid=APPID,
        merchant_serial_no=MERCHANT_SERIAL,
        merchant_public_key=keys.merchant.public_key(),
        platform_private_key=platform or keys.platform,
        public_key_id=PUBLIC_KEY_ID,
        apiv3_key=APIV3_KEY.encode(),
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server(keys: Keys) -> AsyncIterator[WechatPaySimulator]:
    simulator = _simulator(keys)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
def simulator(server: WechatPaySimulator) -> Iterator[WechatPaySimulator]:
    yield server
    server.clear_faults()


Channel = Callable[..., WechatPayChannel]


@pytest_asyncio.fixture
async def channel(keys: Keys, server: WechatPaySimulator) -> AsyncIterator[Channel]:
    """Builds channels whose settings differ from the good ones by the given `wechatpay_*` fields."""
    made: list[WechatPayChannel] = []

    def build(client: httpx.AsyncClient | None = None, **overrides: Any) -> WechatPayChannel:
        values: dict[str, Any] = {
            "wechatpay_mch_id": MCH_ID,
            "wechatpay_appid": APPID,
            "wechatpay_merchant_serial_no": MERCHANT_SERIAL,
            "wechatpay_private_key_path": str(keys.merchant_path),
            "wechatpay_public_key_path": str(keys.platform_public_path),
            "wechatpay_public_key_id": PUBLIC_KEY_ID,
            "wechatpay_apiv3_key": APIV3_KEY,
            "wechatpay_notify_url": NOTIFY_URL,
            "wechatpay_base_url": server.base_url,
        }
        settings = Settings(_env_file=None).model_copy(update={**values, **overrides})  # type: ignore[call-arg]
        made.append(WechatPayChannel(async_sessionmaker[AsyncSession](), settings, client=client))
        return made[-1]

    yield build
    for built in made:
        await built.aclose()


@pytest.fixture
def adapter(channel: Channel) -> WechatPayChannel:
    return channel()


def _later() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=15)


def _number(prefix: str = "wx") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


async def _order(adapter: WechatPayChannel, amount_fen: int = 10_000, **extra: Any) -> str:
    out_trade_no = _number()
    await adapter.create_order(
        idempotency_key=f"key-{out_trade_no}",
        out_trade_no=out_trade_no,
        amount_fen=amount_fen,
        description="处方费",
        expires_at=_later(),
        **extra,
    )
    return out_trade_no


async def _paid(adapter: WechatPayChannel, simulator: WechatPaySimulator, amount_fen: int = 10_000) -> str:
    out_trade_no = await _order(adapter, amount_fen)
    adapter.parse_payment_notice(*await simulator.simulate_payment(out_trade_no))
    return out_trade_no


async def _refund(
    adapter: WechatPayChannel, out_trade_no: str, amount_fen: int, out_refund_no: str | None = None
) -> ChannelRefund:
    number = out_refund_no or _number("rf")
    return await adapter.refund(
        idempotency_key=f"key-{number}",
        out_trade_no=out_trade_no,
        out_refund_no=number,
        amount_fen=amount_fen,
        reason="患者取消",
    )


def _flip_first_char(text: str) -> str:
    return ("B" if text[0] == "A" else "A") + text[1:]


class TestWechatPay(PaymentChannelContract):
    pass


# --- orders ----------------------------------------------------------------------------------------------------------


async def test_native_order_pays_by_code_url(adapter: WechatPayChannel) -> None:
    out_trade_no = _number()
    order = await adapter.create_order(
        idempotency_key="k", out_trade_no=out_trade_no, amount_fen=1, description="挂号费", expires_at=_later()
    )
    assert order.pay_url is not None and order.pay_url.startswith("weixin://wxpay/bizpayurl?pr=")
    assert order.prepay_id is None


async def test_jsapi_order_returns_prepay_id_and_signed_client_params(adapter: WechatPayChannel, keys: Keys) -> None:
    out_trade_no, expires_at = _number(), _later()
    orders = [
        await adapter.create_order(
            idempotency_key="k",
            out_trade_no=out_trade_no,
            amount_fen=2_000,
            description="复诊挂号费",
            expires_at=expires_at,
            payer_openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        )
        for _ in range(2)
    ]
    assert orders[0].prepay_id is not None and orders[0].pay_url is None
    assert orders[1].prepay_id == orders[0].prepay_id

    params = adapter.jsapi_pay_params(orders[0].prepay_id)
    assert params["appId"] == APPID and params["signType"] == "RSA"
    assert params["package"] == f"prepay_id={orders[0].prepay_id}"
    message = "".join(f"{params[k]}\n" for k in ("appId", "timeStamp", "nonceStr", "package")).encode()
    keys.merchant.public_key().verify(base64.b64decode(params["paySign"]), message, padding.PKCS1v15(), hashes.SHA256())


async def test_native_pay_mode_ignores_the_openid(channel: Channel) -> None:
    order = await channel(wechatpay_pay_mode="native").create_order(
        idempotency_key="k",
        out_trade_no=_number(),
        amount_fen=100,
        description="挂号费",
        expires_at=_later(),
        payer_openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
    )
    assert order.pay_url and order.prepay_id is None


async def test_order_number_reused_with_other_parameters_is_refused(adapter: WechatPayChannel) -> None:
    out_trade_no = await _order(adapter, 100)
    with pytest.raises(AdapterRefusal) as refused:
        await adapter.create_order(
            idempotency_key="other",
            out_trade_no=out_trade_no,
            amount_fen=200,
            description="处方费",
            expires_at=_later(),
        )
    assert refused.value.code == "OUT_TRADE_NO_USED"


async def test_create_retried_after_payment_answers_the_paid_order(
    adapter: WechatPayChannel, simulator: WechatPaySimulator
) -> None:
    out_trade_no, expires_at = _number(), _later()

    async def create() -> ChannelOrder:
        return await adapter.create_order(
            idempotency_key="k", out_trade_no=out_trade_no, amount_fen=300, description="挂号费", expires_at=expires_at
        )

    await create()
    notice = adapter.parse_payment_notice(*await simulator.simulate_payment(out_trade_no))
    again = await create()
    assert again.status == ChannelOrderStatus.SUCCESS
    assert again.transaction_id == notice.transaction_id
    assert await simulator.charges(out_trade_no) == 1


async def test_unknown_order_and_refund_are_refused(adapter: WechatPayChannel) -> None:
    with pytest.raises(AdapterRefusal) as order:
        await adapter.query_order(out_trade_no=_number())
    assert order.value.code == "ORDER_NOT_EXIST"
    with pytest.raises(AdapterRefusal):
        await adapter.query_refund(out_trade_no=_number(), out_refund_no=_number("rf"))


# --- request and response signatures ---------------------------------------------------------------------------------


async def test_requests_signed_with_another_key_are_refused_and_retryable(
    channel: Channel, keys: Keys, simulator: WechatPaySimulator
) -> None:
    # A refused request signature is a configuration fault: retryable, so flows resume once the key is fixed.
    with pytest.raises(AdapterError, match="SIGN_ERROR"):
        await channel(wechatpay_private_key_path=str(keys.stranger_path)).query_order(out_trade_no=_number())
    assert simulator.auth_failures[-1] == "签名错误"
    with pytest.raises(AdapterError, match="SIGN_ERROR"):
        await channel(wechatpay_merchant_serial_no="0" * 40).query_order(out_trade_no=_number())
    assert simulator.auth_failures[-1] == "商户证书序列号不正确"


async def test_simulator_checks_the_signed_body(keys: Keys, simulator: WechatPaySimulator) -> None:
    signed = json.dumps({"mchid": MCH_ID}).encode()
    path = f"/v3/pay/transactions/out-trade-no/{_number()}/close"
    header = authorization(
        mchid=MCH_ID, serial_no=MERCHANT_SERIAL, key=keys.merchant, method="POST", target=path, body=signed
    )
    async with httpx.AsyncClient(base_url=simulator.base_url) as client:
        sent = signed.replace(b"}", b', "x": 1}')
        response = await client.post(path, content=sent, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] == "SIGN_ERROR"


async def test_tampered_answer_is_not_trusted_and_the_retry_finds_the_order(
    adapter: WechatPayChannel, simulator: WechatPaySimulator
) -> None:
    out_trade_no, expires_at = _number(), _later()

    async def create() -> ChannelOrder:
        return await adapter.create_order(
            idempotency_key="k", out_trade_no=out_trade_no, amount_fen=500, description="挂号费", expires_at=expires_at
        )

    simulator.tamper_next()
    with pytest.raises(AdapterError, match="not trusted"):
        await create()
    # The order was created all the same; the retry gets WeChat Pay's own answer about it.
    first, second = await create(), await create()
    assert first.pay_url and first.pay_url == second.pay_url


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"public_key": True}, id="another-platform-key"),
        pytest.param({"wechatpay_public_key_id": "PUB_KEY_ID_0119000001092025010100000000000099"}, id="another-key-id"),
    ],
)
async def test_answer_from_another_signer_is_not_trusted(
    channel: Channel, keys: Keys, overrides: dict[str, Any]
) -> None:
    if overrides.pop("public_key", False):
        overrides["wechatpay_public_key_path"] = str(keys.stranger_public_path)
    with pytest.raises(AdapterError, match="not trusted"):
        await channel(**overrides).query_order(out_trade_no=_number())


# --- callbacks -------------------------------------------------------------------------------------------------------


async def test_callback_signed_by_another_key_is_refused(
    adapter: WechatPayChannel, simulator: WechatPaySimulator, keys: Keys
) -> None:
    _, body = await simulator.simulate_payment(await _order(adapter))
    impostor = _simulator(keys, platform=keys.stranger)
    with pytest.raises(InvalidCallback, match="signature"):
        adapter.parse_payment_notice(impostor.sign(body), body)


async def test_callback_from_another_key_id_is_refused(
    adapter: WechatPayChannel, simulator: WechatPaySimulator
) -> None:
    headers, body = await simulator.simulate_payment(await _order(adapter))
    with pytest.raises(InvalidCallback, match="PUB_KEY_ID_OTHER"):
        adapter.parse_payment_notice({**headers, "Wechatpay-Serial": "PUB_KEY_ID_OTHER"}, body)


async def test_callback_replay_window(adapter: WechatPayChannel, simulator: WechatPaySimulator) -> None:
    out_trade_no = await _order(adapter)
    now = datetime.now(UTC)
    for skew in (timedelta(seconds=-310), timedelta(seconds=310)):
        with pytest.raises(InvalidCallback, match="window"):
            adapter.parse_payment_notice(*await simulator.simulate_payment(out_trade_no, signed_at=now + skew))
    inside = adapter.parse_payment_notice(
        *await simulator.simulate_payment(out_trade_no, signed_at=now - timedelta(seconds=240))
    )
    assert inside.status == ChannelOrderStatus.SUCCESS


async def test_correctly_signed_callback_that_does_not_decrypt_is_refused(
    adapter: WechatPayChannel, simulator: WechatPaySimulator, channel: Channel
) -> None:
    headers, body = await simulator.simulate_payment(await _order(adapter))
    envelope = json.loads(body)
    envelope["resource"]["ciphertext"] = _flip_first_char(envelope["resource"]["ciphertext"])
    forged = json.dumps(envelope).encode()
    with pytest.raises(InvalidCallback, match="decrypt"):
        adapter.parse_payment_notice(simulator.sign(forged), forged)
    with pytest.raises(InvalidCallback, match="decrypt"):
        channel(wechatpay_apiv3_key="x" * 32).parse_payment_notice(headers, body)


async def test_callback_for_another_merchant_or_of_another_kind_is_refused(
    adapter: WechatPayChannel, simulator: WechatPaySimulator
) -> None:
    out_trade_no = await _order(adapter)
    _, body = await simulator.simulate_payment(out_trade_no)
    resource = {"mchid": "1900000999", "appid": APPID, "out_trade_no": out_trade_no, "trade_state": "SUCCESS"}
    envelope = {
        **json.loads(body),
        "resource": simulator.encrypt(json.dumps(resource).encode(), associated_data="transaction"),
    }
    forged = json.dumps(envelope).encode()
    with pytest.raises(InvalidCallback, match="another merchant"):
        adapter.parse_payment_notice(simulator.sign(forged), forged)
    with pytest.raises(InvalidCallback, match="REFUND"):
        adapter.parse_refund_notice(simulator.sign(body), body)


async def test_refund_notice_is_verified_and_decoded(adapter: WechatPayChannel, simulator: WechatPaySimulator) -> None:
    out_trade_no = await _paid(adapter, simulator, 10_000)
    refund = await _refund(adapter, out_trade_no, 2_501)
    assert refund.status == RefundStatus.PROCESSING and refund.refund_id

    headers, body = simulator.complete_refund(refund.out_refund_no)
    notice = adapter.parse_refund_notice(headers, body)
    assert (notice.out_refund_no, notice.out_trade_no, notice.amount_fen) == (refund.out_refund_no, out_trade_no, 2_501)
    assert notice.status == RefundStatus.SUCCEEDED and notice.refund_id == refund.refund_id
    assert notice.succeeded_at is not None
    assert (
        await adapter.query_refund(out_trade_no=out_trade_no, out_refund_no=refund.out_refund_no)
    ).status == RefundStatus.SUCCEEDED
    with pytest.raises(InvalidCallback, match="TRANSACTION"):
        adapter.parse_payment_notice(headers, body)
    with pytest.raises(InvalidCallback):
        adapter.parse_refund_notice(headers, body.replace(b"REFUND.SUCCESS", b"REFUND.SUCCESs"))


async def test_closed_refund_frees_its_amount(adapter: WechatPayChannel, simulator: WechatPaySimulator) -> None:
    out_trade_no = await _paid(adapter, simulator, 1_000)
    refund = await _refund(adapter, out_trade_no, 1_000)
    assert adapter.parse_refund_notice(*simulator.complete_refund(refund.out_refund_no, status="CLOSED")).status == (
        RefundStatus.FAILED
    )
    assert (await _refund(adapter, out_trade_no, 1_000)).amount_fen == 1_000


# --- refunds ---------------------------------------------------------------------------------------------------------


async def test_partial_refunds_add_up_to_the_fen(adapter: WechatPayChannel, simulator: WechatPaySimulator) -> None:
    out_trade_no = await _paid(adapter, simulator, 10_001)
    refunds = [await _refund(adapter, out_trade_no, amount) for amount in (3_333, 3_333, 3_335)]
    assert sum(r.amount_fen for r in refunds) == 10_001
    assert len({r.refund_id for r in refunds}) == 3
    with pytest.raises(AdapterRefusal) as refused:
        await _refund(adapter, out_trade_no, 1)
    assert refused.value.code == "REFUND_EXCEEDS_PAID"
    assert (await adapter.query_order(out_trade_no=out_trade_no)).status == ChannelOrderStatus.SUCCESS


async def test_refund_number_reused_with_another_amount_is_refused(
    adapter: WechatPayChannel, simulator: WechatPaySimulator
) -> None:
    out_trade_no = await _paid(adapter, simulator, 1_000)
    first = await _refund(adapter, out_trade_no, 100)
    with pytest.raises(AdapterRefusal) as refused:
        await _refund(adapter, out_trade_no, 200, out_refund_no=first.out_refund_no)
    assert refused.value.code == "OUT_REFUND_NO_USED"


# --- retryable failures ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [(500, "SYSTEM_ERROR"), (503, ""), (429, "FREQUENCY_LIMITED")])
async def test_server_errors_and_rate_limits_are_retryable(
    adapter: WechatPayChannel, simulator: WechatPaySimulator, status: int, code: str
) -> None:
    out_trade_no = await _order(adapter)
    simulator.fail_next(status=status, code=code)
    with pytest.raises(AdapterError):
        await adapter.query_order(out_trade_no=out_trade_no)
    assert (await adapter.query_order(out_trade_no=out_trade_no)).status == ChannelOrderStatus.NOTPAY


async def test_refund_that_timed_out_is_performed_once_on_retry(
    channel: Channel, simulator: WechatPaySimulator
) -> None:
    adapter = channel(client=httpx.AsyncClient(timeout=1.0))
    out_trade_no = await _paid(adapter, simulator, 1_000)
    number = _number("rf")
    simulator.delay_next(seconds=2.0, after=1)  # the order query goes through, the refund itself is slow
    with pytest.raises(AdapterError, match="Timeout"):
        await _refund(adapter, out_trade_no, 600, out_refund_no=number)
    retried = await _refund(adapter, out_trade_no, 600, out_refund_no=number)
    assert retried.refund_id == (await adapter.query_refund(out_trade_no=out_trade_no, out_refund_no=number)).refund_id
    with pytest.raises(AdapterRefusal) as refused:
        await _refund(adapter, out_trade_no, 401)
    assert refused.value.code == "REFUND_EXCEEDS_PAID"
    assert (await _refund(adapter, out_trade_no, 400)).amount_fen == 400


# --- the trade bill --------------------------------------------------------------------------------------------------


async def test_tradebill_is_downloaded_checked_and_parsed_to_the_fen(
    adapter: WechatPayChannel, simulator: WechatPaySimulator
) -> None:
    small = await _order(adapter, 1)
    large = await _order(adapter, 123_456)
    paid = {n: adapter.parse_payment_notice(*await simulator.simulate_payment(n)) for n in (small, large)}
    refund = await _refund(adapter, large, 23_456)
    paid_at = paid[small].paid_at
    assert paid_at is not None

    lines = await adapter.download_bill(bill_date=paid_at.astimezone(BEIJING).date())
    ours = {(line.kind, line.out_trade_no): line for line in lines if line.out_trade_no in (small, large)}
    assert ours[(ChannelBillLineKind.PAYMENT, small)].amount_fen == 1
    payment = ours[(ChannelBillLineKind.PAYMENT, large)]
    assert (payment.amount_fen, payment.status, payment.transaction_id) == (
        123_456,
        "SUCCESS",
        paid[large].transaction_id,
    )
    assert payment.occurred_at == paid[large].paid_at
    assert payment.fee_fen == 741  # 0.60% of 1234.56 元 = 7.40736 元
    refunded = ours[(ChannelBillLineKind.REFUND, large)]
    assert (refunded.amount_fen, refunded.out_refund_no, refunded.refund_id) == (
        23_456,
        refund.out_refund_no,
        refund.refund_id,
    )
    assert refunded.status == "REFUND_PROCESSING"


async def test_tampered_bill_file_is_rejected(adapter: WechatPayChannel, simulator: WechatPaySimulator) -> None:
    notice = adapter.parse_payment_notice(*await simulator.simulate_payment(await _order(adapter, 100)))
    assert notice.paid_at is not None
    simulator.corrupt_next_download()
    with pytest.raises(AdapterError, match="SHA1"):
        await adapter.download_bill(bill_date=notice.paid_at.astimezone(BEIJING).date())


async def test_day_without_trades_has_an_empty_bill(adapter: WechatPayChannel) -> None:
    assert await adapter.download_bill(bill_date=date(2001, 1, 1)) == []


async def test_a_bill_still_being_made_is_not_ready_rather_than_failed(
    adapter: WechatPayChannel, simulator: WechatPaySimulator
) -> None:
    simulator.fail_next(status=400, code="STATEMENT_CREATING")
    with pytest.raises(StatementNotReady):
        await adapter.download_bill(bill_date=date(2001, 1, 1))


BILL = (
    "\ufeff交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注\r\n"
    "`2026-03-02 09:15:07,`wxd678efh567hg6787,`1900000109,`0,`,`4200000001202603020000000001,`rx-0001,"
    "`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`JSAPI,`SUCCESS,`OTHERS,`CNY,`0.01,`0.00,`0,`0,`0.00,`0.00,`,`,"
    "`处方费,含代煎,`,`0.00006,`0.60%,`0.01,`0.00,`\r\n"
    "`2026-03-02 23:59:59,`wxd678efh567hg6787,`1900000109,`0,`,`4200000001202603020000000002,`rx-0002,"
    "`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`SUCCESS,`OTHERS,`CNY,`1234.56,`0.00,`0,`0,`0.00,`0.00,`,`,"
    "`挂号费,`,`7.40736,`0.60%,`1234.56,`0.00,`\r\n"
    "`2026-03-02 10:00:00,`wxd678efh567hg6787,`1900000109,`0,`,`4200000001202603010000000003,`rx-0003,"
    "`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`JSAPI,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50000000382026030200000000001,"
    "`rf-0003,`100.10,`0.00,`ORIGINAL,`SUCCESS,`处方费,`,`-0.60060,`0.60%,`0.00,`100.10,`\r\n"
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n"
    "`3,`1234.57,`100.10,`0.00,`6.81,`1234.57,`100.10\r\n"
).encode()


def test_bill_parser_reads_the_real_format() -> None:
    first, second, refund = parse_tradebill(BILL)
    assert (first.kind, first.out_trade_no, first.amount_fen, first.fee_fen) == (
        ChannelBillLineKind.PAYMENT,
        "rx-0001",
        1,
        0,
    )
    assert first.occurred_at == datetime(2026, 3, 2, 1, 15, 7, tzinfo=UTC)  # 09:15:07 Beijing time
    assert (second.amount_fen, second.fee_fen, second.status) == (123_456, 741, "SUCCESS")
    assert second.occurred_at.astimezone(BEIJING).date() == date(2026, 3, 2)
    assert (refund.kind, refund.amount_fen, refund.fee_fen, refund.status) == (
        ChannelBillLineKind.REFUND,
        10_010,
        60,
        "REFUND",
    )
    assert (refund.out_refund_no, refund.refund_id) == ("rf-0003", "50000000382026030200000000001")


def test_bill_parser_refuses_a_short_or_malformed_file() -> None:
    rows = BILL.decode("utf-8-sig").splitlines()
    with pytest.raises(BillFormatError, match="counts 3"):
        parse_tradebill("\r\n".join(rows[:2] + rows[3:]).encode())
    with pytest.raises(BillFormatError, match="fen"):
        parse_tradebill(BILL.replace(b"`1234.56,`0.00,`", b"`1234.567,`0.00,`"))
    with pytest.raises(BillFormatError, match="summary"):
        parse_tradebill("\r\n".join(rows[:3]).encode())


@pytest.mark.parametrize(
    ("text", "fen"),
    [("0.01", 1), ("0.10", 10), ("1234.56", 123_456), ("1234.5", 123_450), ("100", 10_000), ("0.00", 0)],
)
def test_yuan_to_fen_is_exact(text: str, fen: int) -> None:
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize("text", ["0.001", "1.005", "abc", "", "NaN", "Infinity"])
def test_yuan_to_fen_refuses_what_is_not_whole_fen(text: str) -> None:
    with pytest.raises(BillFormatError):
        yuan_to_fen(text)


@pytest.mark.parametrize(
    ("text", "fen"), [("0.00000", 0), ("0.00499", 0), ("0.00500", 1), ("-0.60060", 60), ("7.40736", 741)]
)
def test_fees_round_half_up_to_the_fen(text: str, fen: int) -> None:
    assert fee_to_fen(text) == fen

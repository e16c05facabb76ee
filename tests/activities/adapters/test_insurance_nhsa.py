"""The nhsa 医保 adapter against the platform simulator, over real HTTP."""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from activities.adapters.errors import AdapterError, AdapterRefusal, InvalidCallback
from activities.adapters.insurance import MedicalInsurance, SettlementUnknown
from activities.adapters.insurance.nhsa import NhsaConfig, NhsaInsurance, keyed_sequence
from activities.adapters.insurance.split import DEFAULT_POLICY, split
from core.settings import Settings
from models import idcard
from models.insurance import (
    CertType,
    DailyCheckDetailQuery,
    DailyCheckLine,
    DailyCheckOutcome,
    DailyCheckQuery,
    FeeLine,
    InsuranceCredential,
    InsuranceVisit,
    InsuredRef,
    MobileOrderQuery,
    MobileOrderRequest,
    MobileOrderState,
    MobilePayRequest,
    MobileRefundRequest,
    MobileRefundStatus,
    SettlementScope,
    SettleRequest,
    VisitRequest,
)
from tests.simulators.nhsa import NhsaSimulator, Person
from tests.simulators.serving import serve

CODE = "H11010500001"
PAASID = "qihuang-test"
SECRET = "simulator-secret"
BEIJING = ZoneInfo("Asia/Shanghai")


@pytest_asyncio.fixture(scope="module")
async def platform() -> AsyncIterator[tuple[NhsaSimulator, str]]:
    simulator = NhsaSimulator(fixmedins_code=CODE, paasid=PAASID, secret=SECRET, stall_s=5.0)
    async with serve(simulator.app) as url:
        yield simulator, url
        simulator.release()


@pytest.fixture
def simulator(platform: tuple[NhsaSimulator, str]) -> NhsaSimulator:
    return platform[0]


def config(url: str, **overrides: object) -> NhsaConfig:
    values: dict[str, object] = {
        "base_url": url,
        "fixmedins_code": CODE,
        "fixmedins_name": "岐黄中医互联网医院",
        "mdtrtarea_admvs": "110105",
        "insuplc_admdvs": "110105",
        "paasid": PAASID,
        "secret": SECRET,
        "opter": "0001",
        "opter_name": "接口测试",
        "timeout_s": 1.0,
    }
    return NhsaConfig.model_validate({**values, **overrides})


@pytest_asyncio.fixture
async def adapter(platform: tuple[NhsaSimulator, str], settings: Settings) -> AsyncIterator[NhsaInsurance]:
    insurance = NhsaInsurance(None, settings, config(platform[1]))
    yield insurance
    await insurance.aclose()


def keys() -> tuple[str, datetime]:
    return f"test-{uuid.uuid4().hex}", datetime.now(UTC)


def fee_lines(*items: tuple[str, str, str]) -> list[FeeLine]:
    """(catalogue code, unit price in 元, count) → fee lines whose totals are price × count."""
    lines = []
    for number, (code, price, count) in enumerate(items, start=1):
        amount = Decimal(price) * Decimal(count)
        lines.append(
            FeeLine(
                feedetl_sn=f"F{number:03d}",
                med_list_codg=code,
                medins_list_codg=f"H-{code}",
                det_item_fee_sumamt_fen=int((amount * 100).quantize(Decimal(1))),
                cnt=Decimal(count),
                pric=Decimal(price),
                fee_ocur_time=datetime.now(UTC),
                bilg_dept_codg="A50",
                bilg_dept_name="中医科",
                bilg_dr_codg="D110105000001",
                bilg_dr_name="李医生",
                rxno="RX0001",
                tcmdrug_used_way="1",
            )
        )
    return lines


# 挂号诊查费 25.00, 黄芪 300 g at 0.0350 元/g = 10.50, and a self-pay (全自费, coded ZF…) 5.00 decoction fee.
FEES = (("001102000010000", "25.00", "1"), ("T000100001", "0.0350", "300"), ("ZF0001", "5.00", "1"))


async def registered(adapter: MedicalInsurance, person: Person) -> InsuranceVisit:
    found = await adapter.query_person(
        credential=InsuranceCredential(cert_type=CertType.ID_CARD, cert_no=person.certno)
    )
    key, at = keys()
    return await adapter.register_visit(
        idempotency_key=key,
        requested_at=at,
        request=VisitRequest(
            insured=found.ref(),
            cert_type=CertType.ID_CARD,
            cert_no=person.certno,
            ipt_otp_no=f"MZ{uuid.uuid4().hex[:12]}",
            begntime=at,
            atddr_no="D110105000001",
            dr_name="李医生",
            dept_code="A50",
            dept_name="中医科",
            caty="A50",
        ),
    )


async def with_fees(adapter: MedicalInsurance, visit: InsuranceVisit, person: Person) -> SettleRequest:
    """Upload the FEES as batch B1 and return the request that settles them."""
    key, at = keys()
    upload = await adapter.upload_fees(
        idempotency_key=key, requested_at=at, visit=visit, chrg_bchno="B1", lines=fee_lines(*FEES)
    )
    return SettleRequest(
        visit=visit, cert_type=CertType.ID_CARD, cert_no=person.certno, chrg_bchno="B1", total_fen=upload.total_fen
    )


def a_person(simulator: NhsaSimulator, *, balance_fen: int = 50_000, insuplc_admdvs: str = "110105") -> Person:
    return simulator.add_person(
        name="张三", certno=idcard.random_valid(), balance_fen=balance_fen, insuplc_admdvs=insuplc_admdvs
    )


# --- the outpatient path: 1101 → 2201 → 2204 → 2206 → 2207 → 2208 ---------------------------------------------------


async def test_query_person_masks_the_id_number_and_reads_the_balance_in_fen(
    adapter: NhsaInsurance, simulator: NhsaSimulator
) -> None:
    assert isinstance(adapter, MedicalInsurance)
    person = a_person(simulator, balance_fen=12_345)
    found = await adapter.query_person(
        credential=InsuranceCredential(cert_type=CertType.ID_CARD, cert_no=person.certno)
    )
    assert found.psn_no == person.psn_no
    assert found.certno_masked == person.certno[:3] + "*" * 11 + person.certno[-4:]
    assert found.coverage().balance_fen == 12_345
    assert found.ref().insuplc_admdvs == person.insuplc_admdvs


async def test_outpatient_path_settles_with_fund_account_and_cash_adding_up_to_the_fen(
    adapter: NhsaInsurance, simulator: NhsaSimulator
) -> None:
    person = a_person(simulator, balance_fen=1_000)
    visit = await registered(adapter, person)
    request = await with_fees(adapter, visit, person)
    assert request.total_fen == 2_500 + 1_050 + 500

    pre = await adapter.pre_settle(request=request)
    assert pre.setl_id is None and not simulator.active_settlements(visit.mdtrt_id)
    key, at = keys()
    settled = await adapter.settle(idempotency_key=key, requested_at=at, request=request)

    # Eligible 35.50 − deductible 10.00 = 25.50; 70 % = 17.85 to the fund; the rest from the 10.00 account, then cash.
    expected = split(4_050, DEFAULT_POLICY.rule("310"), account_balance_fen=1_000, use_account=True, eligible_fen=3_550)
    assert (settled.split.fund_fen, settled.split.account_fen, settled.split.cash_fen) == (1_785, 1_000, 1_265)
    assert (expected.fund_fen, expected.account_fen, expected.cash_fen) == (1_785, 1_000, 1_265)
    assert settled.split.fund_fen + settled.split.account_fen + settled.split.cash_fen == settled.split.total_fen
    assert pre.split == settled.split
    assert settled.fulamt_ownpay_fen == 500 and settled.deductible_fen == 1_000 and settled.balance_fen == 0
    [committed] = simulator.active_settlements(visit.mdtrt_id)
    assert settled.setl_id == committed.setl_id
    assert settled.medins_setl_id == committed.msgid == simulator.received_msgids("2207")[-1]
    assert simulator.persons[person.psn_no].balance_fen == 0


async def test_every_message_carries_the_envelope_and_a_30_character_msgid(
    adapter: NhsaInsurance, simulator: NhsaSimulator
) -> None:
    person = a_person(simulator)
    visit = await registered(adapter, person)
    envelope = simulator.received[-1]
    assert envelope["infno"] == "2201"
    assert re.fullmatch(rf"{CODE}\d{{14}}\d{{4}}", envelope["msgid"]) and len(envelope["msgid"]) == 30
    assert envelope["insuplc_admdvs"] == visit.insured.insuplc_admdvs
    assert envelope["recer_sys_code"] == "MBS_LOCAL" and envelope["infver"] == "V1.0"
    assert datetime.strptime(envelope["inf_time"], "%Y-%m-%d %H:%M:%S")
    assert envelope["input"]["data"]["mdtrt_cert_type"] == "02"


async def test_cancel_settlement_gives_every_part_back(adapter: NhsaInsurance, simulator: NhsaSimulator) -> None:
    person = a_person(simulator, balance_fen=800)
    visit = await registered(adapter, person)
    request = await with_fees(adapter, visit, person)
    key, at = keys()
    settled = await adapter.settle(idempotency_key=key, requested_at=at, request=request)
    assert settled.setl_id is not None

    key, at = keys()
    cancelled = await adapter.cancel_settlement(
        idempotency_key=key, requested_at=at, visit=visit, setl_id=settled.setl_id
    )

    assert cancelled.original_setl_id == settled.setl_id and cancelled.setl_id not in (None, settled.setl_id)
    assert cancelled.split == settled.split
    assert not simulator.active_settlements(visit.mdtrt_id)
    assert simulator.persons[person.psn_no].balance_fen == 800
    # Cancelled fees are unsettled again: they can be withdrawn (2205) and the visit cancelled (2202).
    key, at = keys()
    await adapter.cancel_fees(idempotency_key=key, requested_at=at, visit=visit, chrg_bchno="0000")
    key, at = keys()
    await adapter.cancel_visit(idempotency_key=key, requested_at=at, visit=visit)
    assert simulator.visits[visit.mdtrt_id].cancelled


# --- unknown outcomes, duplicates and faults ------------------------------------------------------------------------


async def test_a_settlement_whose_answer_timed_out_is_reversed_never_resettled(
    adapter: NhsaInsurance, simulator: NhsaSimulator
) -> None:
    person = a_person(simulator, balance_fen=2_000)
    visit = await registered(adapter, person)
    request = await with_fees(adapter, visit, person)
    simulator.fail_next("2207", "stall")  # the platform settles, then the answer never arrives
    key, at = keys()

    with pytest.raises(SettlementUnknown) as unknown:
        await adapter.settle(idempotency_key=key, requested_at=at, request=request)

    [committed] = simulator.active_settlements(visit.mdtrt_id)
    assert committed.msgid == unknown.value.msgid and unknown.value.infno == "2207"
    assert simulator.persons[person.psn_no].balance_fen < 2_000

    reverse_key, reverse_at = keys()
    reversal = await adapter.reverse(
        idempotency_key=reverse_key,
        requested_at=reverse_at,
        insured=visit.insured,
        original_infno="2207",
        original_msgid=unknown.value.msgid,
    )
    assert reversal.original_msgid == unknown.value.msgid
    assert not simulator.active_settlements(visit.mdtrt_id)
    assert simulator.persons[person.psn_no].balance_fen == 2_000
    # Only now settle again, under a new key: exactly one settlement stands.
    key, at = keys()
    settled = await adapter.settle(idempotency_key=key, requested_at=at, request=request)
    assert [item.setl_id for item in simulator.active_settlements(visit.mdtrt_id)] == [settled.setl_id]


async def test_a_retried_settle_resends_the_same_msgid_and_gets_the_first_answer(
    adapter: NhsaInsurance, simulator: NhsaSimulator
) -> None:
    person = a_person(simulator)
    visit = await registered(adapter, person)
    request = await with_fees(adapter, visit, person)
    key, at = keys()

    first = await adapter.settle(idempotency_key=key, requested_at=at, request=request)
    again = await adapter.settle(idempotency_key=key, requested_at=at, request=request)

    assert again == first
    assert len(simulator.active_settlements(visit.mdtrt_id)) == 1
    assert first.medins_setl_id is not None
    assert simulator.received_msgids("2207").count(first.medins_setl_id) == 1


async def test_two_steps_drawing_one_msgid_each_get_their_own_answer(
    adapter: NhsaInsurance, simulator: NhsaSimulator
) -> None:
    first_person, second_person = a_person(simulator), a_person(simulator)
    first = await with_fees(adapter, await registered(adapter, first_person), first_person)
    second = await with_fees(adapter, await registered(adapter, second_person), second_person)
    first_key, at = keys()
    # A key for the second settlement whose first msgid is the first settlement's, in the same second.
    second_key = next(
        candidate
        for candidate in (f"collide-{number}" for number in itertools.count())
        if keyed_sequence("2207", candidate) == keyed_sequence("2207", first_key)
    )

    one = await adapter.settle(idempotency_key=first_key, requested_at=at, request=first)
    two = await adapter.settle(idempotency_key=second_key, requested_at=at, request=second)
    retried = await adapter.settle(idempotency_key=second_key, requested_at=at, request=second)

    assert (one.mdtrt_id, two.mdtrt_id) == (first.visit.mdtrt_id, second.visit.mdtrt_id)
    assert one.medins_setl_id != two.medins_setl_id
    assert retried == two
    assert len(simulator.active_settlements(second.visit.mdtrt_id)) == 1


async def test_reversing_a_message_that_never_arrived_is_a_harmless_success(
    adapter: NhsaInsurance, simulator: NhsaSimulator
) -> None:
    person = a_person(simulator)
    visit = await registered(adapter, person)
    request = await with_fees(adapter, visit, person)
    simulator.fail_next("2207", "http_500")  # the gateway failed; the platform never saw the request
    key, at = keys()
    with pytest.raises(SettlementUnknown) as unknown:
        await adapter.settle(idempotency_key=key, requested_at=at, request=request)
    assert not simulator.active_settlements(visit.mdtrt_id)

    key, at = keys()
    await adapter.reverse(
        idempotency_key=key,
        requested_at=at,
        insured=visit.insured,
        original_infno="2207",
        original_msgid=unknown.value.msgid,
    )
    assert not simulator.active_settlements(visit.mdtrt_id)


async def test_a_settlement_answer_that_does_not_add_up_is_never_accepted(
    adapter: NhsaInsurance, simulator: NhsaSimulator
) -> None:
    person = a_person(simulator)
    visit = await registered(adapter, person)
    request = await with_fees(adapter, visit, person)

    simulator.fail_next("2206", "corrupt")
    with pytest.raises(AdapterError, match="not the total"):
        await adapter.pre_settle(request=request)

    simulator.fail_next("2207", "corrupt")  # settled at the platform, answered with a fund one fen too high
    key, at = keys()
    with pytest.raises(SettlementUnknown) as unknown:
        await adapter.settle(idempotency_key=key, requested_at=at, request=request)
    assert "not the total" in unknown.value.reason and unknown.value.code == "SETTLEMENT_UNKNOWN"
    key, at = keys()
    await adapter.reverse(
        idempotency_key=key,
        requested_at=at,
        insured=visit.insured,
        original_infno="2207",
        original_msgid=unknown.value.msgid,
    )
    assert not simulator.active_settlements(visit.mdtrt_id)


async def test_refusals_errors_and_unreachable_platforms(adapter: NhsaInsurance, simulator: NhsaSimulator) -> None:
    person = a_person(simulator)
    found = await adapter.query_person(
        credential=InsuranceCredential(cert_type=CertType.ID_CARD, cert_no=person.certno)
    )

    simulator.fail_next("1101", "refuse", "该人员参保状态异常")
    with pytest.raises(AdapterRefusal) as refused:
        await adapter.query_person(credential=InsuranceCredential(cert_type=CertType.ID_CARD, cert_no=person.certno))
    assert (refused.value.code, refused.value.message) == ("-1", "该人员参保状态异常")

    simulator.fail_next("2201", "http_500")
    visit_request = VisitRequest(
        insured=found.ref(),
        cert_type=CertType.ID_CARD,
        cert_no=person.certno,
        ipt_otp_no="MZ-500",
        begntime=datetime.now(UTC),
        atddr_no="D110105000001",
        dr_name="李医生",
        dept_code="A50",
        dept_name="中医科",
        caty="A50",
    )
    key, at = keys()
    with pytest.raises(AdapterError) as failed:
        await adapter.register_visit(idempotency_key=key, requested_at=at, request=visit_request)
    assert not isinstance(failed.value, SettlementUnknown)
    # The retry of the same step goes through and the platform registers the visit once.
    visit = await adapter.register_visit(idempotency_key=key, requested_at=at, request=visit_request)
    assert simulator.visits[visit.mdtrt_id].ipt_otp_no == "MZ-500"

    with pytest.raises(AdapterRefusal, match="未查询到"):
        await adapter.query_person(credential=InsuranceCredential(cert_type=CertType.ID_CARD, cert_no=idcard.make()))


async def test_a_wrong_gateway_secret_is_refused(platform: tuple[NhsaSimulator, str], settings: Settings) -> None:
    insurance = NhsaInsurance(None, settings, config(platform[1], secret="not-the-secret"))
    with pytest.raises(AdapterRefusal) as refused:
        await insurance.query_person(credential=InsuranceCredential(cert_type=CertType.ID_CARD, cert_no=idcard.make()))
    await insurance.aclose()
    assert refused.value.code == "GATEWAY_AUTH"


async def test_a_settle_that_never_left_is_retryable(settings: Settings) -> None:
    insurance = NhsaInsurance(None, settings, config("http://127.0.0.1:9"))  # nothing listens on the discard port
    visit = InsuranceVisit(
        insured=InsuredRef(psn_no="1", insutype="310", insuplc_admdvs="110105"),
        mdtrt_id="M1",
        ipt_otp_no="MZ1",
    )
    request = SettleRequest(
        visit=visit, cert_type=CertType.ID_CARD, cert_no=idcard.make(), chrg_bchno="B1", total_fen=100
    )
    key, at = keys()
    with pytest.raises(AdapterError) as failed:
        await insurance.settle(idempotency_key=key, requested_at=at, request=request)
    await insurance.aclose()
    assert not isinstance(failed.value, SettlementUnknown)


# --- mobile payment: 6201 → 6202 → notice → 6301 → 6203, and 6401 ---------------------------------------------------


def authorized(simulator: NhsaSimulator, person: Person, med_org_ord: str = "QH-order") -> str:
    """The payAuthNo the platform issues when `person` authorizes paying `med_org_ord` (read from its report)."""
    _, body = simulator.authorize(person, med_org_ord)
    return str(json.loads(body)["payAuthNo"])


def mobile_order(visit: InsuranceVisit, person: Person, simulator: NhsaSimulator) -> MobileOrderRequest:
    med_org_ord = f"QH{uuid.uuid4().hex[:16]}"
    return MobileOrderRequest(
        visit=visit,
        med_org_ord=med_org_ord,
        pay_auth_no=authorized(simulator, person, med_org_ord),
        user_name=person.name,
        id_no=person.certno,
        chrg_bchno="M1",
        begntime=datetime.now(UTC),
        dept_code="A50",
        dept_name="中医科",
        caty="A50",
        atddr_no="D110105000001",
        dr_name="李医生",
        lines=fee_lines(*FEES[:2]),
    )


async def test_mobile_payment_path(adapter: NhsaInsurance, simulator: NhsaSimulator) -> None:
    person = a_person(simulator, balance_fen=500)
    visit = await registered(adapter, person)
    order_request = mobile_order(visit, person, simulator)
    key, at = keys()
    order = await adapter.upload_mobile_order(idempotency_key=key, requested_at=at, request=order_request)
    query = MobileOrderQuery(order=order, user_name=person.name, id_no=person.certno)
    assert (await adapter.query_mobile_order(query=query)).state == MobileOrderState.PROCESSING

    key, at = keys()
    paid = await adapter.mobile_pay(
        idempotency_key=key,
        requested_at=at,
        request=MobilePayRequest(order=order, visit=visit, pay_auth_no=order_request.pay_auth_no, chrg_bchno="M1"),
    )
    assert paid.state == MobileOrderState.SETTLED
    assert paid.split.total_fen == order_request.total_fen == 3_550
    assert paid.split.fund_fen + paid.split.account_fen + paid.split.cash_fen == 3_550
    assert paid.split.account_fen == 500

    headers, body = simulator.notice(order.pay_ord_id)
    notice = adapter.parse_mobile_notice(headers, body)
    assert (notice.pay_ord_id, notice.med_org_ord, notice.split) == (order.pay_ord_id, order.med_org_ord, paid.split)
    status = await adapter.query_mobile_order(query=query)
    assert status.state == MobileOrderState.SETTLED and status.split == paid.split

    key, at = keys()
    refund = await adapter.mobile_refund(
        idempotency_key=key,
        requested_at=at,
        request=MobileRefundRequest(
            order=order, refund_type=SettlementScope.ALL, split=paid.split, pay_auth_no=order_request.pay_auth_no
        ),
    )
    assert refund.status == MobileRefundStatus.SUCCEEDED
    assert (await adapter.query_mobile_order(query=query)).state == MobileOrderState.CANCELLED
    assert simulator.persons[person.psn_no].balance_fen == 500


async def test_an_unpaid_mobile_order_is_revoked_with_6401(adapter: NhsaInsurance, simulator: NhsaSimulator) -> None:
    person = a_person(simulator)
    visit = await registered(adapter, person)
    key, at = keys()
    order = await adapter.upload_mobile_order(
        idempotency_key=key, requested_at=at, request=mobile_order(visit, person, simulator)
    )
    query = MobileOrderQuery(order=order, user_name=person.name, id_no=person.certno)

    key, at = keys()
    await adapter.cancel_mobile_order(idempotency_key=key, requested_at=at, query=query)

    status = await adapter.query_mobile_order(query=query)
    assert status.state == MobileOrderState.CANCELLED and status.split is None


async def test_a_mobile_notice_must_verify(adapter: NhsaInsurance, simulator: NhsaSimulator) -> None:
    person = a_person(simulator)
    visit = await registered(adapter, person)
    order_request = mobile_order(visit, person, simulator)
    key, at = keys()
    order = await adapter.upload_mobile_order(idempotency_key=key, requested_at=at, request=order_request)
    key, at = keys()
    await adapter.mobile_pay(
        idempotency_key=key,
        requested_at=at,
        request=MobilePayRequest(order=order, visit=visit, pay_auth_no=order_request.pay_auth_no, chrg_bchno="M1"),
    )
    headers, body = simulator.notice(order.pay_ord_id)

    with pytest.raises(InvalidCallback):
        adapter.parse_mobile_notice({**headers, "x-tif-signature": "0" * 64}, body)
    old_headers, old_body = simulator.notice(order.pay_ord_id, at=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(InvalidCallback, match="window"):
        adapter.parse_mobile_notice(old_headers, old_body)
    with pytest.raises(InvalidCallback, match="not the total"):
        adapter.parse_mobile_notice(headers, body.replace(b'"fundPay":', b'"fundPay":1', 1))


async def test_the_patients_authorization_verifies_and_binds_the_payment_to_them(
    adapter: NhsaInsurance, simulator: NhsaSimulator
) -> None:
    person, stranger = a_person(simulator), a_person(simulator)
    headers, body = simulator.authorize(person, "QH-bill-1")
    authorization = adapter.parse_mobile_authorization(headers, body)
    assert (authorization.med_org_ord, authorization.user_name, authorization.id_no) == (
        "QH-bill-1",
        person.name,
        person.certno,
    )
    assert authorization.pay_auth_no in simulator.authorizations
    with pytest.raises(InvalidCallback):
        adapter.parse_mobile_authorization({**headers, "x-tif-signature": "0" * 64}, body)
    with pytest.raises(InvalidCallback, match="authorization"):
        adapter.parse_mobile_authorization(headers, b'{"medOrgOrd": "QH-bill-1"}')

    # Someone else's authorization is no consent of this patient: the platform refuses the order.
    visit = await registered(adapter, person)
    order_request = mobile_order(visit, person, simulator).model_copy(
        update={"pay_auth_no": authorized(simulator, stranger)}
    )
    key, at = keys()
    with pytest.raises(AdapterRefusal, match="支付授权码"):
        await adapter.upload_mobile_order(idempotency_key=key, requested_at=at, request=order_request)


async def test_a_6202_whose_answer_timed_out_is_never_resent_and_6301_finds_it_settled(
    adapter: NhsaInsurance, simulator: NhsaSimulator
) -> None:
    person = a_person(simulator, balance_fen=1_000)
    visit = await registered(adapter, person)
    order_request = mobile_order(visit, person, simulator)
    key, at = keys()
    order = await adapter.upload_mobile_order(idempotency_key=key, requested_at=at, request=order_request)
    pay = MobilePayRequest(order=order, visit=visit, pay_auth_no=order_request.pay_auth_no, chrg_bchno="M1")

    simulator.fail_next("6202", "stall")
    key, at = keys()
    sent = len(simulator.received_msgids("6202"))
    with pytest.raises(SettlementUnknown) as unknown:
        await adapter.mobile_pay(idempotency_key=key, requested_at=at, request=pay)
    assert unknown.value.infno == "6202" and simulator.received_msgids("6202")[sent:] == [unknown.value.msgid]
    query = MobileOrderQuery(order=order, user_name=person.name, id_no=person.certno)
    status = await adapter.query_mobile_order(query=query)
    assert status.state == MobileOrderState.SETTLED and status.split is not None
    assert status.split.fund_fen + status.split.account_fen + status.split.cash_fen == order_request.total_fen
    assert simulator.persons[person.psn_no].balance_fen == 1_000 - status.split.account_fen
    # The same step asked again goes out under the same msgid and meets the platform's first answer: one settlement.
    again = await adapter.mobile_pay(idempotency_key=key, requested_at=at, request=pay)
    assert again.split == status.split and simulator.received_msgids("6202")[sent:] == [unknown.value.msgid]
    assert simulator.persons[person.psn_no].balance_fen == 1_000 - status.split.account_fen


async def test_a_timed_out_6201_or_6203_retried_under_its_key_acts_once(
    adapter: NhsaInsurance, simulator: NhsaSimulator
) -> None:
    person = a_person(simulator, balance_fen=800)
    visit = await registered(adapter, person)
    order_request = mobile_order(visit, person, simulator)
    simulator.fail_next("6201", "stall")
    upload_key, upload_at = keys()
    with pytest.raises(AdapterError) as lost:
        await adapter.upload_mobile_order(idempotency_key=upload_key, requested_at=upload_at, request=order_request)
    assert not isinstance(lost.value, SettlementUnknown)  # uploading settles nothing: a plain retry is safe
    order = await adapter.upload_mobile_order(idempotency_key=upload_key, requested_at=upload_at, request=order_request)
    assert [o.pay_ord_id for o in simulator.orders.values() if o.med_org_ord == order_request.med_org_ord] == [
        order.pay_ord_id
    ]

    key, at = keys()
    paid = await adapter.mobile_pay(
        idempotency_key=key,
        requested_at=at,
        request=MobilePayRequest(order=order, visit=visit, pay_auth_no=order_request.pay_auth_no, chrg_bchno="M1"),
    )
    assert simulator.persons[person.psn_no].balance_fen == 800 - paid.split.account_fen > -1
    refund = MobileRefundRequest(
        order=order, refund_type=SettlementScope.ALL, split=paid.split, pay_auth_no=order_request.pay_auth_no
    )
    simulator.fail_next("6203", "stall")
    refund_key, refund_at = keys()
    sent = len(simulator.received_msgids("6203"))
    with pytest.raises(AdapterError):
        await adapter.mobile_refund(idempotency_key=refund_key, requested_at=refund_at, request=refund)
    done = await adapter.mobile_refund(idempotency_key=refund_key, requested_at=refund_at, request=refund)
    assert done.status == MobileRefundStatus.SUCCEEDED and len(simulator.received_msgids("6203")[sent:]) == 1
    # Given back once: the account is whole again, not credited twice.
    assert simulator.persons[person.psn_no].balance_fen == 800
    assert simulator.orders[order.pay_ord_id].ord_stas == "7"


# --- reconciliation: 3201 and 3202 ----------------------------------------------------------------------------------


async def test_daily_check_totals_and_details(adapter: NhsaInsurance, simulator: NhsaSimulator) -> None:
    # A clearing institution of its own, so settlements of the other tests do not count.
    settled = []
    for balance in (0, 3_000, 100):
        person = a_person(simulator, balance_fen=balance, insuplc_admdvs="120101")
        visit = await registered(adapter, person)
        request = await with_fees(adapter, visit, person)
        key, at = keys()
        settled.append(await adapter.settle(idempotency_key=key, requested_at=at, request=request))
    today = datetime.now(BEIJING).date()
    totals = {
        "total_fen": sum(item.split.total_fen for item in settled),
        "fund_fen": sum(item.split.fund_fen for item in settled),
        "account_fen": sum(item.split.account_fen for item in settled),
        "settlement_count": 3,
    }
    base = {"insutype": "310", "clr_type": "11", "setl_optins": "120101", "begin": today, "end": today}

    balanced = await adapter.daily_check(query=DailyCheckQuery.model_validate({**base, **totals}))
    assert balanced.balanced and balanced.stmt_rslt == "0"
    off = await adapter.daily_check(query=DailyCheckQuery.model_validate({**base, **totals, "fund_fen": 1}))
    assert not off.balanced

    lines = [
        DailyCheckLine(
            setl_id=item.setl_id or "",
            mdtrt_id=item.mdtrt_id,
            psn_no=item.psn_no,
            total_fen=item.split.total_fen,
            fund_fen=item.split.fund_fen,
            account_fen=item.split.account_fen,
        )
        for item in settled[:2]  # the third is missing from our books
    ]
    lines[1] = lines[1].model_copy(update={"fund_fen": lines[1].fund_fen - 1})  # our books are off by one fen
    ghost = DailyCheckLine(setl_id="LOCAL-ONLY", mdtrt_id="M0", psn_no="P0", total_fen=100, fund_fen=0, account_fen=0)
    key, at = keys()
    detail = await adapter.daily_check_detail(
        idempotency_key=key,
        requested_at=at,
        query=DailyCheckDetailQuery(setl_optins="120101", begin=today, end=today, lines=[*lines, ghost]),
    )
    outcomes = {line.setl_id: line.outcome for line in detail.lines}
    assert outcomes == {
        settled[0].setl_id: DailyCheckOutcome.MATCHED,
        settled[1].setl_id: DailyCheckOutcome.AMOUNT_MISMATCH,
        "LOCAL-ONLY": DailyCheckOutcome.HOSPITAL_ONLY,
        settled[2].setl_id: DailyCheckOutcome.PLATFORM_ONLY,
    }
    assert {line.setl_id for line in detail.mismatches} == {settled[1].setl_id, settled[2].setl_id, "LOCAL-ONLY"}

"""The 医保 money rules (元 ↔ 分, the fund/account/cash split) and the sandbox adapter that applies them."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.errors import AdapterRefusal, InvalidCallback
from activities.adapters.insurance import MedicalInsurance
from activities.adapters.insurance.sandbox import SandboxInsurance
from activities.adapters.insurance.split import (
    DEFAULT_POLICY,
    SplitRule,
    fen_to_yuan,
    split,
    yuan_to_fen,
)
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
    MobileOrderQuery,
    MobileOrderRequest,
    MobileOrderState,
    MobilePayRequest,
    MobileRefundRequest,
    MobileRefundStatus,
    PaymentSplit,
    SettlementScope,
    SettleRequest,
    VisitRequest,
    mobile_order_state,
)

BEIJING = ZoneInfo("Asia/Shanghai")
RULES = [
    SplitRule(fund_ratio=Decimal("0.70"), deductible_fen=1_000),
    SplitRule(fund_ratio=Decimal("0.50"), deductible_fen=2_000),
    SplitRule(fund_ratio=Decimal("0.333"), deductible_fen=7),
    SplitRule(fund_ratio=Decimal(1)),
    SplitRule(fund_ratio=Decimal(0)),
]


# --- 元 ↔ 分 --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fen"),
    [
        (Decimal("12.30"), 1_230),
        (Decimal("0.01"), 1),
        (Decimal("1E+2"), 10_000),
        ("12.3", 1_230),
        (" 7 ", 700),
        (5, 500),
        (Decimal("99999999999999.99"), 9_999_999_999_999_999),
    ],
)
def test_yuan_converts_to_fen_exactly(value: object, fen: int) -> None:
    assert yuan_to_fen(value) == fen


@pytest.mark.parametrize("value", [Decimal("0.001"), "1.005", "abc", "NaN", "Infinity", Decimal("-0.01")])
def test_yuan_that_is_not_a_whole_fen_or_not_an_amount_is_refused(value: object) -> None:
    with pytest.raises(ValueError):
        yuan_to_fen(value)


@pytest.mark.parametrize("value", [0.1, True, None, [1]])
def test_floats_and_other_types_are_never_money(value: object) -> None:
    with pytest.raises(TypeError):
        yuan_to_fen(value)


def test_negative_yuan_only_when_signed() -> None:
    assert yuan_to_fen(Decimal("-12.34"), signed=True) == -1_234


def test_fen_to_yuan_round_trips_with_two_decimals() -> None:
    rng = random.Random(3201)
    samples = [*range(0, 20_001), *(rng.randrange(10**15) for _ in range(2_000))]
    for fen in samples:
        yuan = fen_to_yuan(fen)
        assert yuan.as_tuple().exponent == -2
        assert yuan_to_fen(yuan) == fen
        assert yuan_to_fen(str(yuan)) == fen
    assert str(fen_to_yuan(1_230)) == "12.30"
    with pytest.raises(TypeError):
        fen_to_yuan(True)


# --- the split ------------------------------------------------------------------------------------------------------


def check(total: int, rule: SplitRule, balance: int, use_account: bool, eligible: int) -> None:
    shares = split(total, rule, account_balance_fen=balance, use_account=use_account, eligible_fen=eligible)
    # No fen lost or created, nothing negative.
    assert shares.fund_fen + shares.account_fen + shares.cash_fen == total
    assert min(shares.fund_fen, shares.account_fen, shares.cash_fen) >= 0
    # The deductible comes off the eligible amount; the fund pays its ratio of the rest, rounded down to the fen.
    assert shares.deductible_fen == min(eligible, rule.deductible_fen)
    exact = Fraction(eligible - shares.deductible_fen) * Fraction(rule.fund_ratio)
    assert shares.fund_fen <= exact < shares.fund_fen + 1
    # The account pays first, within its balance and only when allowed; cash pays the rest.
    personal = total - shares.fund_fen
    assert shares.account_fen == (min(personal, balance) if use_account else 0)
    assert shares.cash_fen == personal - shares.account_fen


def test_split_over_every_amount_up_to_50_yuan() -> None:
    for total in range(0, 5_001):
        for rule in RULES:
            for balance in (0, 1, 999, 10**9):
                for use_account in (True, False):
                    check(total, rule, balance, use_account, total)


def test_split_over_random_amounts_and_eligible_parts() -> None:
    rng = random.Random(2207)
    for _ in range(20_000):
        total = rng.choice([rng.randrange(100), rng.randrange(10**6), rng.randrange(10**12)])
        eligible = rng.randint(0, total)
        ratio = Decimal(rng.randrange(10_001)) / 10_000
        rule = SplitRule(fund_ratio=ratio, deductible_fen=rng.randrange(5_000))
        check(total, rule, rng.randrange(10**7), rng.random() < 0.8, eligible)


def test_the_fund_share_never_shrinks_as_the_total_grows() -> None:
    for rule in RULES:
        shares = [split(total, rule, account_balance_fen=0, use_account=False).fund_fen for total in range(3_000)]
        assert shares == sorted(shares)


def test_rounding_leaves_the_odd_fraction_of_a_fen_with_the_patient() -> None:
    shares = split(1_001, SplitRule(fund_ratio=Decimal("0.70")), account_balance_fen=0, use_account=True)
    assert (shares.fund_fen, shares.account_fen, shares.cash_fen) == (700, 0, 301)  # 700.7 → 700
    shares = split(4_050, DEFAULT_POLICY.rule("310"), account_balance_fen=1_000, use_account=True, eligible_fen=3_550)
    assert (shares.fund_fen, shares.account_fen, shares.cash_fen, shares.deductible_fen) == (1_785, 1_000, 1_265, 1_000)


def test_unknown_insurance_types_get_nothing_from_the_fund() -> None:
    shares = split(5_000, DEFAULT_POLICY.rule("999"), account_balance_fen=0, use_account=True)
    assert (shares.fund_fen, shares.cash_fen) == (0, 5_000)


@pytest.mark.parametrize(
    ("total", "balance", "eligible"),
    [(-1, 0, None), (100, -1, None), (100, 0, 101), (100, 0, -1)],
)
def test_impossible_inputs_are_refused(total: int, balance: int, eligible: int | None) -> None:
    with pytest.raises(ValueError):
        split(total, RULES[0], account_balance_fen=balance, use_account=True, eligible_fen=eligible)


def test_rules_must_be_sane() -> None:
    with pytest.raises(ValueError):
        SplitRule(fund_ratio=Decimal("1.01"))
    with pytest.raises(ValueError):
        SplitRule(fund_ratio=Decimal("0.5"), deductible_fen=-1)


# --- the DTO invariants ---------------------------------------------------------------------------------------------


def test_a_split_whose_parts_do_not_add_up_is_invalid() -> None:
    PaymentSplit(total_fen=100, fund_fen=70, account_fen=20, cash_fen=5, hospital_part_fen=5)
    with pytest.raises(ValidationError, match="not the total"):
        PaymentSplit(total_fen=100, fund_fen=70, account_fen=20, cash_fen=11)
    with pytest.raises(ValidationError):
        PaymentSplit(total_fen=100, fund_fen=110, account_fen=0, cash_fen=-10)


def test_order_states_are_grouped_and_unknown_codes_are_never_paid() -> None:
    assert [mobile_order_state(str(code)) for code in (0, 2, 3, 6, 7, 13, 14, 16)] == [
        MobileOrderState.PROCESSING,
        MobileOrderState.PROCESSING,
        MobileOrderState.SETTLED,
        MobileOrderState.SETTLED,
        MobileOrderState.CANCELLED,
        MobileOrderState.CANCELLED,
        MobileOrderState.FAILED,
        MobileOrderState.FAILED,
    ]
    assert mobile_order_state("17") == mobile_order_state("x") == MobileOrderState.UNKNOWN


# --- the sandbox applies the same rules end to end ------------------------------------------------------------------


@pytest.fixture
def sandbox(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> SandboxInsurance:
    return SandboxInsurance(sessions, settings)


def keys() -> tuple[str, datetime]:
    return f"sb-{uuid.uuid4().hex}", datetime.now(UTC)


def lines() -> list[FeeLine]:
    return [
        FeeLine(
            feedetl_sn=f"F{number}",
            med_list_codg="T000100001",
            medins_list_codg="H-T000100001",
            det_item_fee_sumamt_fen=amount,
            cnt=Decimal(1),
            pric=fen_to_yuan(amount),
            fee_ocur_time=datetime.now(UTC),
            bilg_dept_codg="A50",
            bilg_dept_name="中医科",
            bilg_dr_codg="D1",
            bilg_dr_name="李医生",
        )
        for number, amount in enumerate((2_500, 1_551), start=1)
    ]


async def employee(sandbox: SandboxInsurance) -> tuple[str, InsuranceVisit]:
    """A sandbox person insured as an employee (310, with a personal account) and a registered visit."""
    while True:
        certno = idcard.random_valid()
        found = await sandbox.query_person(credential=InsuranceCredential(cert_type=CertType.ID_CARD, cert_no=certno))
        if found.coverage().insutype == "310":
            break
    key, at = keys()
    visit = await sandbox.register_visit(
        idempotency_key=key,
        requested_at=at,
        request=VisitRequest(
            insured=found.ref(),
            cert_type=CertType.ID_CARD,
            cert_no=certno,
            ipt_otp_no=f"MZ{uuid.uuid4().hex[:10]}",
            begntime=at,
            atddr_no="D1",
            dr_name="李医生",
            dept_code="A50",
            dept_name="中医科",
            caty="A50",
        ),
    )
    return certno, visit


async def test_sandbox_settles_by_the_split_rules_and_undoes_cleanly(sandbox: SandboxInsurance) -> None:
    assert isinstance(sandbox, MedicalInsurance)
    certno, visit = await employee(sandbox)
    credential = InsuranceCredential(cert_type=CertType.ID_CARD, cert_no=certno)
    opening = (await sandbox.query_person(credential=credential)).coverage().balance_fen
    key, at = keys()
    upload = await sandbox.upload_fees(
        idempotency_key=key, requested_at=at, visit=visit, chrg_bchno="B1", lines=lines()
    )
    request = SettleRequest(
        visit=visit, cert_type=CertType.ID_CARD, cert_no=certno, chrg_bchno="B1", total_fen=upload.total_fen
    )

    pre = await sandbox.pre_settle(request=request)
    key, at = keys()
    settled = await sandbox.settle(idempotency_key=key, requested_at=at, request=request)
    again = await sandbox.settle(idempotency_key=key, requested_at=at, request=request)

    expected = split(4_051, DEFAULT_POLICY.rule("310"), account_balance_fen=opening, use_account=True)
    assert (settled.split.fund_fen, settled.split.account_fen, settled.split.cash_fen) == (
        expected.fund_fen,
        expected.account_fen,
        expected.cash_fen,
    )
    assert pre.split == settled.split and again == settled
    assert (await sandbox.query_person(credential=credential)).coverage().balance_fen == opening - expected.account_fen

    key, at = keys()
    with pytest.raises(AdapterRefusal, match="已有结算"):
        await sandbox.cancel_visit(idempotency_key=key, requested_at=at, visit=visit)
    assert settled.setl_id is not None
    key, at = keys()
    cancelled = await sandbox.cancel_settlement(
        idempotency_key=key, requested_at=at, visit=visit, setl_id=settled.setl_id
    )
    assert cancelled.split == settled.split
    assert (await sandbox.query_person(credential=credential)).coverage().balance_fen == opening

    # A settlement whose answer was lost is reversed by its msgid.
    lost_key, at = keys()
    lost = await sandbox.settle(idempotency_key=lost_key, requested_at=at, request=request)
    key, at = keys()
    await sandbox.reverse(
        idempotency_key=key,
        requested_at=at,
        insured=visit.insured,
        original_infno="2207",
        original_msgid=sandbox.msgid(lost_key),
    )
    assert lost.medins_setl_id == sandbox.msgid(lost_key)
    assert (await sandbox.query_person(credential=credential)).coverage().balance_fen == opening
    key, at = keys()
    await sandbox.cancel_fees(idempotency_key=key, requested_at=at, visit=visit, chrg_bchno="0000")
    key, at = keys()
    await sandbox.cancel_visit(idempotency_key=key, requested_at=at, visit=visit)


async def test_sandbox_mobile_path_and_reconciliation(sandbox: SandboxInsurance) -> None:
    certno, visit = await employee(sandbox)
    key, at = keys()
    order_request = MobileOrderRequest(
        visit=visit,
        med_org_ord=f"QH{uuid.uuid4().hex[:12]}",
        pay_auth_no="AUTH1",
        user_name="张三",
        id_no=certno,
        chrg_bchno="M1",
        begntime=at,
        dept_code="A50",
        dept_name="中医科",
        caty="A50",
        atddr_no="D1",
        dr_name="李医生",
        lines=lines(),
    )
    order = await sandbox.upload_mobile_order(idempotency_key=key, requested_at=at, request=order_request)
    query = MobileOrderQuery(order=order, user_name="张三", id_no=certno)
    key, at = keys()
    paid = await sandbox.mobile_pay(
        idempotency_key=key,
        requested_at=at,
        request=MobilePayRequest(order=order, visit=visit, pay_auth_no="AUTH1", chrg_bchno="M1"),
    )
    assert paid.state == MobileOrderState.SETTLED and paid.split.total_fen == 4_051

    headers, body = await sandbox.simulate_notice(order.pay_ord_id)
    assert sandbox.parse_mobile_notice(headers, body).split == paid.split
    with pytest.raises(InvalidCallback):
        sandbox.parse_mobile_notice(headers, body.replace(b"4051", b"4052"))

    today = at.astimezone(BEIJING).date()
    detail = await sandbox.daily_check_detail(
        idempotency_key=keys()[0],
        requested_at=at,
        query=DailyCheckDetailQuery(
            setl_optins=visit.insured.insuplc_admdvs,
            begin=today,
            end=today,
            lines=[
                DailyCheckLine(
                    setl_id=order.pay_ord_id,
                    mdtrt_id=visit.mdtrt_id,
                    psn_no=visit.insured.psn_no,
                    total_fen=paid.split.total_fen,
                    fund_fen=paid.split.fund_fen,
                    account_fen=paid.split.account_fen,
                )
            ],
        ),
    )
    assert {line.setl_id: line.outcome for line in detail.lines}[order.pay_ord_id] == DailyCheckOutcome.MATCHED
    unbalanced = await sandbox.daily_check(
        query=DailyCheckQuery(
            insutype="310",
            clr_type="11",
            setl_optins=visit.insured.insuplc_admdvs,
            begin=today,
            end=today,
            total_fen=0,
            fund_fen=0,
            account_fen=0,
            settlement_count=0,
        )
    )
    assert not unbalanced.balanced

    key, at = keys()
    refund = await sandbox.mobile_refund(
        idempotency_key=key,
        requested_at=at,
        request=MobileRefundRequest(
            order=order, refund_type=SettlementScope.ALL, split=paid.split, pay_auth_no="AUTH1"
        ),
    )
    assert refund.status == MobileRefundStatus.SUCCEEDED
    assert (await sandbox.query_mobile_order(query=query)).state == MobileOrderState.CANCELLED

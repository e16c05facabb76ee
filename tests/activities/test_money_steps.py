"""Money steps against PostgreSQL and the sandbox 医保 platform, payment channel and e-invoice platform: the split
to the fen and its cancellation (2208), a settlement whose answer was lost (reversed with 2601, settled once), the
refund claim (never twice, never above what was paid, 医保 whole or not at all), merchants per campus, e-invoices."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlmodel import col
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.adapters.insurance import SettlementUnknown
from activities.adapters.insurance.sandbox import SandboxInsurance
from activities.adapters.insurance.split import DEFAULT_POLICY, split
from activities.adapters.invoice.sandbox import SandboxInvoice
from activities.adapters.payment.merchants import Merchants
from activities.billing import BillingActivities
from activities.insurance_pay import InsurancePayActivities, RecordedSettlements
from activities.invoices import InvoiceActivities
from api.errors import Problem
from api.schemas.money import InsuranceIn
from api.services.callbacks import deliver_insurance_authorization
from api.services.refunds import present_insurance, refundable_fen
from core.crypto.sm import FieldCipher
from core.settings import MerchantRule, Settings
from models import idcard
from models.billing import (
    BillInput,
    BillKind,
    BillState,
    BillStatus,
    ChannelOrder,
    ChannelOrderStatus,
    ChannelRefund,
    InsurancePath,
    InsuranceRelease,
    InsuranceSettleRequest,
    InsuranceShare,
    MobileSettlementState,
    PaymentNotice,
    RefundInput,
    RefundResult,
    RefundStatus,
)
from models.common import HOSPITAL_TZ, Role
from models.insurance import CertType, InsuranceCredential, PaymentSplit
from models.invoice import InvoiceStatus, InvoiceTask
from models.reconciliation import INSURANCE_CHANNEL
from models.tables import Bill, Doctor, InsuranceSettlement, Refund
from models.tables import InsuranceCredential as InsuranceCredentialRow
from tests.api.consult_helpers import give_identity, make_consult_visit
from tests.api.helpers import make_user


@pytest.fixture
def cipher(settings: Settings) -> FieldCipher:
    return FieldCipher(settings.pii_key, settings.blind_index_key)


def in_flow(workflow_id: str) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = replace(env.info, workflow_id=workflow_id)
    return env


async def insured_token(insurance: SandboxInsurance, insutype: str) -> str:
    """A 医保电子凭证 token whose sandbox person has insurance `insutype` (310 employees have a personal account)."""
    while True:
        token = f"ec-{uuid.uuid4().hex}"
        person = await insurance.query_person(
            credential=InsuranceCredential(cert_type=CertType.EC_TOKEN, cert_no=token)
        )
        if person.coverage().insutype == insutype:
            return token


async def insured_bill(sessions, cipher, insurance, *, amount_fen: int, use_account: bool = True):  # type: ignore[no-untyped-def]
    visit = await make_consult_visit(sessions, stage="waiting_doctor")
    bill_id = f"{visit.visit_id}-reg"
    token = await insured_token(insurance, "310")
    await present_insurance(
        sessions, cipher, visit.patient_id, bill_id, InsuranceIn(ec_token=token, use_account=use_account)
    )
    return registration_request(visit, amount_fen), token


def registration_request(visit, amount_fen: int) -> InsuranceSettleRequest:  # type: ignore[no-untyped-def]
    """Settle the registration fee of `visit` (its bill is `{visit}-reg`)."""
    return InsuranceSettleRequest(
        bill_id=f"{visit.visit_id}-reg",
        kind=BillKind.REGISTRATION,
        ref_id=visit.visit_id,
        patient_id=visit.patient_id,
        amount_fen=amount_fen,
        requested_at=datetime.now(UTC),
    )


async def balance(insurance: SandboxInsurance, token: str) -> int:
    person = await insurance.query_person(credential=InsuranceCredential(cert_type=CertType.EC_TOKEN, cert_no=token))
    return person.coverage().balance_fen


async def test_insurance_splits_a_bill_to_the_fen_and_2208_gives_it_back(sessions, settings, cipher) -> None:
    insurance = SandboxInsurance(sessions, settings)
    steps = InsurancePayActivities(sessions, cipher, insurance)
    request, token = await insured_bill(sessions, cipher, insurance, amount_fen=123_45)
    opening = await balance(insurance, token)
    flow = in_flow(f"bill-{request.bill_id}")
    assert await steps.insurance_presented(request.bill_id)

    share: InsuranceShare = await flow.run(steps.settle_bill_insurance, request)
    expected = split(123_45, DEFAULT_POLICY.rule("310"), account_balance_fen=opening, use_account=True)
    assert (share.split.fund_fen, share.split.account_fen, share.split.cash_fen) == (
        expected.fund_fen,
        expected.account_fen,
        expected.cash_fen,
    )
    assert share.split.fund_fen + share.split.account_fen + share.split.cash_fen == 123_45
    assert await balance(insurance, token) == opening - share.split.account_fen
    # A retried activity answers from the record: no second settlement.
    assert await flow.run(steps.settle_bill_insurance, request) == share
    assert await balance(insurance, token) == opening - share.split.account_fen

    today = datetime.now(HOSPITAL_TZ).date()
    booked = {entry.line.setl_id: entry for entry in await RecordedSettlements(sessions).settled_on(today)}
    line = booked[share.setl_id].line
    assert (line.total_fen, line.fund_fen, line.account_fen, line.cancelled) == (
        123_45,
        share.split.fund_fen,
        share.split.account_fen,
        False,
    )

    release = InsuranceRelease(bill_id=request.bill_id, requested_at=datetime.now(UTC), reason="全额退款")
    refund_flow = in_flow(f"refund-{request.bill_id}-a1")
    cancelled = await refund_flow.run(steps.release_bill_insurance, release)
    assert cancelled == share.split
    assert await balance(insurance, token) == opening
    # Releasing again changes nothing at the platform.
    assert await refund_flow.run(steps.release_bill_insurance, release) == share.split
    booked = {entry.line.setl_id: entry for entry in await RecordedSettlements(sessions).settled_on(today)}
    assert booked[share.setl_id].line.cancelled


class LostAnswer(SandboxInsurance):
    """The platform settles the first 2207 but its answer never arrives."""

    lost = False

    async def settle(self, *, idempotency_key, requested_at, request):  # type: ignore[no-untyped-def]
        answer = await super().settle(idempotency_key=idempotency_key, requested_at=requested_at, request=request)
        if not self.lost:
            self.lost = True
            raise SettlementUnknown("2207", self.msgid(idempotency_key), "gateway timeout")
        return answer


async def test_a_lost_settlement_is_reversed_and_the_account_charged_once(sessions, settings, cipher) -> None:
    insurance = LostAnswer(sessions, settings)
    steps = InsurancePayActivities(sessions, cipher, insurance)
    request, token = await insured_bill(sessions, cipher, insurance, amount_fen=88_00)
    opening = await balance(insurance, token)
    flow = in_flow(f"bill-{request.bill_id}")

    with pytest.raises(ApplicationError) as unknown:
        await flow.run(steps.settle_bill_insurance, request)
    assert unknown.value.type == "SETTLEMENT_UNKNOWN" and unknown.value.non_retryable
    async with sessions() as session:
        row = await session.get(InsuranceSettlement, request.bill_id)
    assert (
        row is not None
        and row.status == "unknown"
        and row.msgid == SandboxInsurance.msgid(f"bill-{request.bill_id}:2207:0")
    )
    # The lost settlement did spend the account at the platform, until it is reversed.
    assert await balance(insurance, token) < opening
    await flow.run(steps.reverse_unknown_settlement, request)
    assert await balance(insurance, token) == opening

    again = request.model_copy(update={"attempt": 1})
    share: InsuranceShare = await flow.run(steps.settle_bill_insurance, again)
    assert share.split.total_fen == 88_00
    assert await balance(insurance, token) == opening - share.split.account_fen


async def paid_bill(sessions, *, channel_fen: int, insurance_fen: int = 0, split_: PaymentSplit | None = None) -> str:  # type: ignore[no-untyped-def]
    _, patient_id = await make_user(sessions, Role.PATIENT)
    bill_id = f"bill-{uuid.uuid4().hex[:10]}"
    async with sessions() as session, session.begin():
        session.add(
            Bill(
                id=bill_id, kind="registration", ref_id=bill_id, patient_id=patient_id or "", amount_fen=channel_fen,
                insurance_fen=insurance_fen, status="paid", channel="sandbox", paid_at=datetime.now(UTC),
                description="在线复诊挂号费",
            )
        )  # fmt: skip
        if split_ is not None:
            session.add(
                InsuranceSettlement(
                    bill_id=bill_id, patient_id=patient_id or "", psn_no="P1", insutype="310", insuplc_admdvs="110000",
                    mdtrt_id="M1", ipt_otp_no=bill_id, chrg_bchno="00", status="settled", setl_id=f"S-{bill_id}",
                    total_fen=split_.total_fen, fund_fen=split_.fund_fen, account_fen=split_.account_fen,
                    cash_fen=split_.cash_fen, settled_at=datetime.now(UTC),
                )
            )  # fmt: skip
    return bill_id


def refund(bill_id: str, n: int, amount_fen: int) -> RefundInput:
    return RefundInput(
        refund_id=f"{bill_id}-a{n}",
        bill_id=bill_id,
        patient_id="p",
        channel="sandbox",
        amount_fen=amount_fen,
        reason="测试",
        requested_by="u-admin",
    )


async def bill_row(sessions, bill_id: str) -> Bill:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        row = await session.get(Bill, bill_id)
    assert row is not None
    return row


SPLIT = PaymentSplit(total_fen=100_00, fund_fen=50_00, account_fen=20_00, cash_fen=30_00)


async def test_refund_claims_never_repeat_never_exceed_and_take_insurance_whole(sessions, settings) -> None:
    billing = BillingActivities(sessions, Channel("sandbox"), settings=settings)  # type: ignore[arg-type]
    bill_id = await paid_bill(sessions, channel_fen=30_00, insurance_fen=70_00, split_=SPLIT)

    partial = await billing.claim_refund(refund(bill_id, 1, 10_00))
    assert (partial.channel_fen, partial.insurance, partial.final) == (10_00, None, False)
    assert partial.eta == "10.00元原路退回，即时到账"
    assert await billing.claim_refund(refund(bill_id, 1, 10_00)) == partial  # a retry claims nothing again
    with pytest.raises(ApplicationError) as whole:
        await billing.claim_refund(refund(bill_id, 2, 50_00))  # more than the cash left, less than everything
    assert whole.value.type == "REFUND_INSURANCE_WHOLE"

    # Two refunds of everything left race: exactly one is claimed.
    outcomes = await asyncio.gather(
        billing.claim_refund(refund(bill_id, 3, 90_00)),
        billing.claim_refund(refund(bill_id, 4, 90_00)),
        return_exceptions=True,
    )
    plans = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, ApplicationError)]
    assert len(plans) == 1 and [r.type for r in refused] == ["REFUND_EXCEEDS_PAID"]
    [plan] = plans
    assert (plan.channel_fen, plan.insurance, plan.final) == (20_00, SPLIT, True)
    assert plan.eta.startswith("医保部分70.00元") and "自付部分20.00元原路退回" in plan.eta
    row = await bill_row(sessions, bill_id)
    assert (row.refunded_fen, row.insurance_refunded_fen) == (30_00, 70_00)

    # The 医保 reversal failed: both parts of that claim go back, and the refund can be made again.
    await billing.finish_refund(
        RefundResult(
            refund_id=plan.refund_id, bill_id=bill_id, amount_fen=90_00, status=RefundStatus.FAILED, channel_fen=20_00
        )
    )
    row = await bill_row(sessions, bill_id)
    assert (row.refunded_fen, row.insurance_refunded_fen) == (10_00, 0)
    again = await billing.claim_refund(refund(bill_id, 5, 90_00))
    assert again.final and again.insurance == SPLIT


async def test_an_old_flows_reservation_claims_the_channel_part_only(sessions, settings) -> None:
    billing = BillingActivities(sessions, Channel("sandbox"), settings=settings)  # type: ignore[arg-type]
    bill_id = await paid_bill(sessions, channel_fen=30_00)
    await billing.reserve_refund(refund(bill_id, 1, 30_00))
    await billing.reserve_refund(refund(bill_id, 1, 30_00))
    with pytest.raises(ApplicationError) as over:
        await billing.reserve_refund(refund(bill_id, 2, 1))
    assert over.value.type == "REFUND_EXCEEDS_PAID"
    assert (await bill_row(sessions, bill_id)).refunded_fen == 30_00


class Channel:
    """A payment channel that records which merchant was asked what."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.orders: list[str] = []
        self.closed: list[str] = []

    async def create_order(self, *, idempotency_key, out_trade_no, amount_fen, description, expires_at):  # type: ignore[no-untyped-def]
        self.orders.append(out_trade_no)
        return ChannelOrder(out_trade_no=out_trade_no, amount_fen=amount_fen, status=ChannelOrderStatus.NOTPAY)

    async def close_order(self, *, idempotency_key, out_trade_no):  # type: ignore[no-untyped-def]
        self.closed.append(out_trade_no)
        return ChannelOrder(out_trade_no=out_trade_no, amount_fen=0, status=ChannelOrderStatus.CLOSED)

    async def query_order(self, *, out_trade_no):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    async def refund(self, **_: object) -> ChannelRefund:
        raise NotImplementedError

    async def query_refund(self, **_: object) -> ChannelRefund:
        raise NotImplementedError

    def parse_payment_notice(self, headers: Mapping[str, str], body: bytes) -> PaymentNotice:
        raise NotImplementedError


async def test_each_bill_goes_to_the_merchant_its_campus_rule_picks(sessions, settings) -> None:
    east, west, default = Channel("sandbox"), Channel("sandbox"), Channel("sandbox")
    routed = await make_consult_visit(sessions, stage="awaiting_payment")
    other = await make_consult_visit(sessions, stage="awaiting_payment")
    async with sessions() as session:
        department = (
            await session.execute(select(col(Doctor.department_id)).where(col(Doctor.id) == routed.doctor_id))
        ).scalar()
    merchants = Merchants(default, {"east": east, "west": west}, [MerchantRule(campus="west", department=department)])
    billing = BillingActivities(sessions, default, merchants=merchants, settings=settings)  # type: ignore[arg-type]

    for visit, campus, channel in ((routed, "west", west), (other, "east", east)):
        bill = BillInput(
            bill_id=f"{visit.visit_id}-reg", kind=BillKind.REGISTRATION, ref_id=visit.visit_id,
            patient_id=visit.patient_id, amount_fen=20_00, description="挂号费", channel="sandbox", pay_window_s=60,
        )  # fmt: skip
        order = await billing.create_channel_order(bill)
        assert order.campus == campus and channel.orders == [bill.bill_id]
        state = BillState(bill_id=bill.bill_id, status=BillStatus.OPEN, amount_fen=20_00, campus=order.campus)
        await billing.record_bill(bill, state)
        await billing.close_channel_order(bill.bill_id)
        assert channel.closed == [bill.bill_id]
        assert (await bill_row(sessions, bill.bill_id)).campus == campus
    assert default.orders == []


def test_merchant_rules_pick_by_kind_and_department_and_name_known_campuses(settings: Settings) -> None:
    loaded: dict[str, Settings] = {}

    def load(campus_settings: Settings) -> Channel:
        loaded[campus_settings.wechatpay_mch_id] = campus_settings
        return Channel("wechatpay")

    configured = settings.model_copy(
        update={
            "campuses": Settings.model_validate(
                {"campuses": {"east": {"name": "东院", "payment": {"wechatpay_mch_id": "1900000109"}},
                              "west": {"name": "西院", "payment": {"wechatpay_mch_id": "1900000110"}}}}
            ).campuses,
            "payment_merchant_rules": [MerchantRule(campus="west", kind="prescription"),
                                       MerchantRule(campus="east", department="dep-1")],
        }
    )  # fmt: skip
    merchants = Merchants.load(configured, Channel("wechatpay"), load)  # type: ignore[arg-type]
    assert set(loaded) == {"1900000109", "1900000110"}
    assert merchants.pick(kind="prescription", department="dep-1") == "west"
    assert merchants.pick(kind="registration", department="dep-1") == "east"
    assert merchants.pick(kind="registration", department="dep-2") == "east"  # the first campus listed
    assert merchants.for_callback("west") is merchants.channel("west")
    assert merchants.for_callback("wechatpay") is merchants.channel(None) is merchants.channel("east")
    assert merchants.for_callback("alipay") is None
    with pytest.raises(ValueError, match="campuses not in campuses"):
        Settings.model_validate({"payment_merchant_rules": [{"campus": "north"}]})


async def test_record_bill_keeps_the_channel_part_and_the_insurance_part(sessions, settings) -> None:
    billing = BillingActivities(sessions, Channel("sandbox"), settings=settings)  # type: ignore[arg-type]
    visit = await make_consult_visit(sessions, stage="awaiting_payment")
    for total, covered, channel in ((100_00, 70_00, "sandbox"), (30_00, 30_00, INSURANCE_CHANNEL)):
        bill = BillInput(
            bill_id=f"{visit.visit_id}-{total}", kind=BillKind.REGISTRATION, ref_id=visit.visit_id,
            patient_id=visit.patient_id, amount_fen=total, description="挂号费", channel="sandbox", pay_window_s=60,
        )  # fmt: skip
        parts = PaymentSplit(total_fen=total, fund_fen=covered, account_fen=0, cash_fen=total - covered)
        state = BillState(
            bill_id=bill.bill_id, status=BillStatus.PAID, amount_fen=total,
            insurance=InsuranceShare(setl_id="S", split=parts),
        )  # fmt: skip
        await billing.record_bill(bill, state)
        row = await bill_row(sessions, bill.bill_id)
        assert (row.amount_fen, row.insurance_fen, row.channel) == (total - covered, covered, channel)


async def test_a_paid_bill_gets_one_receipt_reversed_after_a_full_refund_in_either_order(
    sessions, settings, cipher
) -> None:
    platform = SandboxInvoice(sessions, settings)
    invoices = InvoiceActivities(sessions, cipher, platform)

    bill_id = await paid_bill(sessions, channel_fen=30_00, insurance_fen=70_00, split_=SPLIT)
    task = InvoiceTask(bill_id=bill_id, patient_id="p")
    issued = await in_flow(f"invoice-{bill_id}").run(invoices.issue_invoice, task)
    assert issued.invoice_no and issued.total_fen == 100_00 and issued.red_invoice_no is None
    again = await in_flow(f"invoice-{bill_id}").run(invoices.issue_invoice, task)
    assert again.invoice_no == issued.invoice_no
    row = await bill_row(sessions, bill_id)
    assert row.invoice_no == issued.invoice_no and row.invoice_code and row.invoice_check_code

    # Nothing to reverse before the full refund's reversal asks; then the red receipt is on the bill.
    reverse = task.model_copy(update={"reverse": True, "reason": "全额退款"})
    red = await in_flow(f"invoice-{bill_id}-red").run(invoices.reverse_invoice, reverse)
    assert red.red_invoice_no
    held = await platform.query(invoice_code=row.invoice_code or "", invoice_no=issued.invoice_no or "")
    assert held.status is InvoiceStatus.REVERSED
    assert (await bill_row(sessions, bill_id)).red_invoice_no == red.red_invoice_no

    # Refunded in full before the receipt was issued: the issuer reverses it at once.
    early = await paid_bill(sessions, channel_fen=20_00)
    async with sessions() as session, session.begin():
        session.add(
            Refund(id=f"{early}-a1", bill_id=early, amount_fen=20_00, reason="x", requested_by="u", status="succeeded",
                   final=True)
        )  # fmt: skip
    outcome = await in_flow(f"invoice-{early}").run(invoices.issue_invoice, InvoiceTask(bill_id=early, patient_id="p"))
    assert outcome.invoice_no and outcome.red_invoice_no


# --- 医保移动支付 and partial refunds beyond the self-pay part ---


async def mobile_bill(sessions, cipher, *, amount_fen: int, use_account: bool = True):  # type: ignore[no-untyped-def]
    """A registration bill the patient (with a verified identity) chose to pay by 医保移动支付; nothing authorized."""
    visit = await make_consult_visit(sessions, stage="waiting_doctor")
    id_no = await give_identity(sessions, cipher, visit.patient_id, "王五")
    request = registration_request(visit, amount_fen)
    await present_insurance(
        sessions, cipher, visit.patient_id, request.bill_id, InsuranceIn(mobile=True, use_account=use_account)
    )
    return request, id_no


async def id_card_balance(insurance: SandboxInsurance, id_no: str) -> int:
    person = await insurance.query_person(credential=InsuranceCredential(cert_type=CertType.ID_CARD, cert_no=id_no))
    return person.coverage().balance_fen


async def test_the_mobile_path_settles_with_the_patients_own_authorization_and_6203_gives_it_back(
    sessions, settings, cipher, client
) -> None:
    insurance = SandboxInsurance(sessions, settings)
    steps = InsurancePayActivities(sessions, cipher, insurance)
    request, id_no = await mobile_bill(sessions, cipher, amount_fen=66_66)
    flow = in_flow(f"bill-{request.bill_id}")
    assert await steps.insurance_path(request.bill_id) is InsurancePath.MOBILE

    with pytest.raises(ApplicationError) as early:
        await flow.run(steps.settle_bill_insurance, request)
    assert early.value.type == "INSURANCE_NOT_AUTHORIZED"
    # Someone else's authorization is refused; the patient's own is kept (encrypted) and wins over later ones.
    other = insurance.simulate_authorization(request.bill_id, user_name="赵六", id_no=idcard.random_valid())
    async with sessions() as session:
        with pytest.raises(Problem) as stranger:
            await deliver_insurance_authorization(client, session, cipher, insurance, *other)
    assert stranger.value.status == 409
    own = insurance.simulate_authorization(request.bill_id, user_name="王五", id_no=id_no)
    async with sessions() as session:
        assert await deliver_insurance_authorization(client, session, cipher, insurance, *own) == request.bill_id
    async with sessions() as session:
        credential = await session.get(InsuranceCredentialRow, request.bill_id)
    assert credential is not None and credential.authorized_at is not None
    assert credential.pay_auth_no_enc and "SBAU" not in credential.pay_auth_no_enc

    opening = await id_card_balance(insurance, id_no)
    share: InsuranceShare = await flow.run(steps.settle_bill_insurance, request)
    assert share.split.fund_fen + share.split.account_fen + share.split.cash_fen == 66_66
    assert await id_card_balance(insurance, id_no) == opening - share.split.account_fen
    async with sessions() as session:
        row = await session.get(InsuranceSettlement, request.bill_id)
    assert row is not None and row.mobile and row.status == "settled" and row.setl_id == row.pay_ord_id
    assert await flow.run(steps.settle_bill_insurance, request) == share  # a retry settles nothing again
    check = await flow.run(steps.check_mobile_settlement, request)
    assert check.state is MobileSettlementState.SETTLED and check.share == share

    release = InsuranceRelease(bill_id=request.bill_id, requested_at=datetime.now(UTC), reason="全额退款")
    refund_flow = in_flow(f"refund-{request.bill_id}-a1")
    assert await refund_flow.run(steps.release_bill_insurance, release) == share.split
    assert await refund_flow.run(steps.release_bill_insurance, release) == share.split
    assert await id_card_balance(insurance, id_no) == opening


class LostMobileAnswer(SandboxInsurance):
    """The platform settles the first 6202 but its answer never arrives."""

    lost = False

    async def mobile_pay(self, *, idempotency_key, requested_at, request):  # type: ignore[no-untyped-def]
        answer = await super().mobile_pay(idempotency_key=idempotency_key, requested_at=requested_at, request=request)
        if not self.lost:
            self.lost = True
            raise SettlementUnknown("6202", self.msgid(idempotency_key), "gateway timeout")
        return answer


async def test_a_lost_6202_answer_is_found_settled_by_6301_and_charged_once(sessions, settings, cipher, client) -> None:
    insurance = LostMobileAnswer(sessions, settings)
    steps = InsurancePayActivities(sessions, cipher, insurance)
    request, id_no = await mobile_bill(sessions, cipher, amount_fen=45_00)
    own = insurance.simulate_authorization(request.bill_id, user_name="王五", id_no=id_no)
    async with sessions() as session:
        await deliver_insurance_authorization(client, session, cipher, insurance, *own)
    opening = await id_card_balance(insurance, id_no)
    flow = in_flow(f"bill-{request.bill_id}")

    with pytest.raises(ApplicationError) as unknown:
        await flow.run(steps.settle_bill_insurance, request)
    assert unknown.value.type == "SETTLEMENT_UNKNOWN"
    await flow.run(steps.reverse_unknown_settlement, request)  # a mobile order is asked about, never reversed
    check = await flow.run(steps.check_mobile_settlement, request)
    assert check.state is MobileSettlementState.SETTLED and check.share is not None
    assert check.share.split.total_fen == 45_00
    assert await id_card_balance(insurance, id_no) == opening - check.share.split.account_fen


async def test_a_partial_refund_beyond_self_pay_resettles_the_rest_to_the_fen(sessions, settings, cipher) -> None:
    insurance = SandboxInsurance(sessions, settings)
    steps = InsurancePayActivities(sessions, cipher, insurance)
    billing = BillingActivities(sessions, Channel("sandbox"), settings=settings)  # type: ignore[arg-type]
    request, _ = await insured_bill(sessions, cipher, insurance, amount_fen=100_00, use_account=False)
    share: InsuranceShare = await in_flow(f"bill-{request.bill_id}").run(steps.settle_bill_insurance, request)
    covered, cash = share.covered_fen, share.split.cash_fen
    assert cash > 0 and covered > 0
    async with sessions() as session, session.begin():
        session.add(
            Bill(id=request.bill_id, kind="registration", ref_id=request.ref_id, patient_id=request.patient_id,
                 amount_fen=cash, insurance_fen=covered, status="paid", channel="sandbox", paid_at=datetime.now(UTC))
        )  # fmt: skip
    wanted = cash + 23_45  # beyond the self-pay part, short of everything

    plan = await billing.claim_refund(refund(request.bill_id, 1, wanted))
    assert plan.resettle is not None and not plan.final and plan.insurance == share.split
    assert (plan.resettle.remaining_fen, plan.resettle.cash_held_fen, plan.resettle.insurance_held_fen) == (
        100_00 - wanted,
        cash,
        covered,
    )
    assert plan.resettle.path is InsurancePath.HOSPITAL and "重新结算" in plan.eta
    assert await billing.claim_refund(refund(request.bill_id, 1, wanted)) == plan  # a retry claims nothing again
    with pytest.raises(ApplicationError) as held:
        await billing.claim_refund(refund(request.bill_id, 2, 1))  # everything left is held meanwhile
    assert held.value.type == "REFUND_EXCEEDS_PAID"

    refund_flow = in_flow(f"refund-{request.bill_id}-a1")
    release = InsuranceRelease(bill_id=request.bill_id, requested_at=datetime.now(UTC), reason="部分退款")
    assert await refund_flow.run(steps.release_bill_insurance, release) == share.split
    rest = request.model_copy(update={"amount_fen": plan.resettle.remaining_fen, "requested_at": datetime.now(UTC)})
    again: InsuranceShare = await refund_flow.run(steps.settle_bill_insurance, rest)
    expected = split(100_00 - wanted, DEFAULT_POLICY.rule("310"), account_balance_fen=0, use_account=False)
    assert (again.split.fund_fen, again.split.cash_fen) == (expected.fund_fen, expected.cash_fen)
    assert again.setl_id != share.setl_id
    assert await refund_flow.run(steps.settle_bill_insurance, rest) == again

    result = RefundResult(
        refund_id=plan.refund_id, bill_id=request.bill_id, amount_fen=wanted, status=RefundStatus.SUCCEEDED,
        insurance_fen=covered - again.covered_fen, channel_fen=cash - again.split.cash_fen, resettle=True,
    )  # fmt: skip
    assert result.insurance_fen + (result.channel_fen or 0) == wanted
    await billing.finish_refund(result)
    await billing.finish_refund(result)  # once only
    row = await bill_row(sessions, request.bill_id)
    assert (row.refunded_fen, row.insurance_refunded_fen) == (result.channel_fen, result.insurance_fen)
    assert refundable_fen(row) == again.split.total_fen
    async with sessions() as session:
        claimed = await session.get(Refund, plan.refund_id)
    assert claimed is not None and (claimed.amount_fen, claimed.insurance_fen, claimed.status) == (
        result.channel_fen,
        result.insurance_fen,
        "succeeded",
    )
    # The platform's book holds the new settlement of the day, not the one given back.
    today = datetime.now(HOSPITAL_TZ).date()
    booked = {entry.line.setl_id: entry.line for entry in await RecordedSettlements(sessions).settled_on(today)}
    assert booked[again.setl_id or ""].total_fen == 100_00 - wanted and share.setl_id not in booked

    # What remains refunds in full as before: the new settlement goes back whole with the cash left.
    final = await billing.claim_refund(refund(request.bill_id, 3, again.split.total_fen))
    assert final.final and final.resettle is None and final.channel_fen == again.split.cash_fen

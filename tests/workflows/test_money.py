"""Money paths of the Bill, Refund, Invoice and Prescription flows, on the dev server with fake activities:
the 医保 split at payment (and a settlement whose answer never came), 医保移动支付 (the patient's authorization first,
a lost 6202 answer asked about at the platform's notice or by polling), refunds through the 医保 platform and the
channel, partial refunds beyond the self-pay part (the settlement given back whole and the rest settled anew),
special refunds by negotiation, a patient's refund request before the medicine leaves, e-invoices."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from models.billing import (
    BillInput,
    BillKind,
    BillStatus,
    ChannelOrderStatus,
    ConcludeNegotiation,
    InsurancePath,
    InsuranceResettle,
    InsuranceShare,
    MobileSettlementCheck,
    MobileSettlementState,
    NegotiationEntry,
    NegotiationParty,
    PaymentNotice,
    RefundInput,
    RefundKind,
    RefundPlan,
    RefundStatus,
)
from models.insurance import PaymentSplit
from models.invoice import InvoiceTask
from models.prescription import RxStage
from models.refund_request import DispatchStatus, RxRefundDecision, RxRefundRequest, RxRefundStatus
from tests.workflows.conftest import Harness
from tests.workflows.fakes import FakeWorld
from tests.workflows.test_prescription import paid, until
from workflows.bill import BillWorkflow, bill_workflow_id, insurance_authorization_link
from workflows.invoice import InvoiceWorkflow, invoice_workflow_id
from workflows.prescription import PrescriptionWorkflow
from workflows.refund import RefundWorkflow, refund_workflow_id

SPLIT = PaymentSplit(total_fen=10_000, fund_fen=5_000, account_fen=2_000, cash_fen=3_000)


def bill_input(amount_fen: int = 10_000, pay_window_s: int = 60) -> BillInput:
    bill_id = f"b-{uuid.uuid4().hex[:10]}"
    return BillInput(
        bill_id=bill_id,
        kind=BillKind.REGISTRATION,
        ref_id=bill_id,
        patient_id="pat-1",
        amount_fen=amount_fen,
        description="在线复诊挂号费",
        channel="sandbox",
        pay_window_s=pay_window_s,
    )


async def told(world: FakeWorld, template: str, count: int = 1) -> None:
    """Notices go out beside the flow: wait until `count` of `template` went out."""

    async def sent() -> bool:
        return sum(n.template == template for n in world.notices) >= count

    await until(sent)


async def open_bill(h: Harness, bill: BillInput) -> WorkflowHandle:
    return await h.client.start_workflow(BillWorkflow.run, bill, id=bill_workflow_id(bill.bill_id), task_queue=h.queue)


async def pay(h: Harness, bill: BillInput, amount_fen: int) -> None:
    """Pay once the bill is open at the channel (a mobile-path bill first leads to the 医保 authorization)."""
    handle = h.client.get_workflow_handle(bill_workflow_id(bill.bill_id))

    async def opened() -> bool:
        pay_url = (await handle.query(BillWorkflow.state)).pay_url
        return pay_url is not None and pay_url != insurance_authorization_link(bill.bill_id)

    await until(opened)
    await handle.signal(
        BillWorkflow.payment_notice,
        PaymentNotice(out_trade_no=bill.bill_id, status=ChannelOrderStatus.SUCCESS, amount_fen=amount_fen),
    )


# --- the 医保 split at payment ---


async def test_insured_bill_orders_only_the_cash_part_and_says_how_it_was_paid(harness: Harness) -> None:
    world = harness.world
    bill = bill_input()
    world.insurance_presented_for.add(bill.bill_id)
    world.settle_outcomes = [InsuranceShare(setl_id="S1", split=SPLIT)]
    handle = await open_bill(harness, bill)
    # A notice for the whole amount is not this bill's payment: the channel was asked for the cash part only.
    await pay(harness, bill, 10_000)
    await pay(harness, bill, 3_000)
    state = await handle.result()

    assert state.status is BillStatus.PAID and state.insurance is not None
    assert state.channel_fen == 3_000 and state.insurance.covered_fen == 7_000
    [request] = world.settle_requests
    assert (request.amount_fen, request.attempt) == (10_000, 0)
    [paid] = [n for n in world.notices if n.template == "bill_paid"]
    assert "统筹基金支付50.00元" in paid.params["split"] and "个人账户支付20.00元" in paid.params["split"]
    assert "个人自付30.00元" in paid.params["split"] and paid.params["link"] == f"/bills/{bill.bill_id}"
    # The e-invoice comes from a flow of its own.
    invoice = await harness.client.get_workflow_handle_for(
        InvoiceWorkflow.run, invoice_workflow_id(bill.bill_id)
    ).result()
    assert invoice.invoice_no == f"INV-{bill.bill_id}"
    assert world.releases == []


async def test_a_settlement_whose_answer_never_came_is_reversed_before_settling_again(harness: Harness) -> None:
    world = harness.world
    bill = bill_input()
    world.insurance_presented_for.add(bill.bill_id)
    world.settle_outcomes = ["SETTLEMENT_UNKNOWN", InsuranceShare(setl_id="S2", split=SPLIT)]
    handle = await open_bill(harness, bill)
    await pay(harness, bill, 3_000)
    state = await handle.result()

    assert state.insurance is not None and state.insurance.setl_id == "S2"
    assert [r.attempt for r in world.settle_requests] == [0, 1]
    # The reversal (2601) names the attempt whose answer was lost, and comes before the next settling message.
    assert [r.attempt for r in world.reversals] == [0]


async def test_a_refused_insurance_leaves_the_bill_self_pay_with_the_platform_released(harness: Harness) -> None:
    world = harness.world
    bill = bill_input()
    world.insurance_presented_for.add(bill.bill_id)
    world.settle_outcomes = ["INSURANCE_SUSPENDED"]
    handle = await open_bill(harness, bill)
    await pay(harness, bill, 10_000)
    state = await handle.result()

    assert state.status is BillStatus.PAID and state.insurance is None
    assert state.insurance_refused == "医保：INSURANCE_SUSPENDED"
    [release] = world.releases
    assert release.cancel_visit  # the registered visit and fees are withdrawn (2205/2202)
    assert "insurance_not_used" in {n.template for n in world.notices}


async def test_an_insured_bill_closing_unpaid_gives_the_settlement_back(harness: Harness) -> None:
    world = harness.world
    bill = bill_input(pay_window_s=1)
    world.insurance_presented_for.add(bill.bill_id)
    world.settle_outcomes = [InsuranceShare(setl_id="S3", split=SPLIT)]
    state = await (await open_bill(harness, bill)).result()
    assert state.status is BillStatus.CLOSED
    [release] = world.releases
    assert release.bill_id == bill.bill_id and release.cancel_visit
    assert world.invoices == []


async def test_a_bill_paid_by_insurance_alone_needs_no_channel(harness: Harness) -> None:
    world = harness.world
    bill = bill_input(amount_fen=3_000)
    world.insurance_presented_for.add(bill.bill_id)
    covered = PaymentSplit(total_fen=3_000, fund_fen=2_000, account_fen=1_000, cash_fen=0)
    world.settle_outcomes = [InsuranceShare(setl_id="S4", split=covered)]
    calls_before = world.calls["create_channel_order"]
    state = await (await open_bill(harness, bill)).result()
    assert state.status is BillStatus.PAID and state.channel_fen == 0
    assert state.pay_url == f"/bills/{bill.bill_id}" and state.transaction_id == "S4"
    assert world.calls["create_channel_order"] == calls_before


# --- 医保移动支付: the patient authorizes on the platform, 6201/6202 settle, 6301 tells what a lost answer did ---


async def authorize(h: Harness, bill: BillInput) -> WorkflowHandle:
    """Open the bill, wait for it to ask for the patient's 医保 authorization, then deliver the platform's report."""
    handle = await open_bill(h, bill)

    async def asking() -> bool:
        return (await handle.query(BillWorkflow.state)).awaiting_insurance_authorization

    await until(asking)
    await handle.signal(BillWorkflow.insurance_authorized)
    return handle


async def test_a_mobile_bill_settles_only_after_the_patients_authorization(harness: Harness) -> None:
    world = harness.world
    bill = bill_input()
    world.mobile_for.add(bill.bill_id)
    world.settle_outcomes = [InsuranceShare(setl_id="ORD-1", split=SPLIT)]
    handle = await open_bill(harness, bill)

    async def asking() -> bool:
        return (await handle.query(BillWorkflow.state)).awaiting_insurance_authorization

    await until(asking)
    waiting = await handle.query(BillWorkflow.state)
    # The patient is sent to authorize first: nothing is settled and nothing is ordered at the channel before that.
    assert (
        waiting.pay_url
        == insurance_authorization_link(bill.bill_id)
        == f"/bills/{bill.bill_id}/insurance-authorization"
    )
    assert world.settle_requests == [] and waiting.insurance is None
    await handle.signal(BillWorkflow.insurance_authorized)
    await pay(harness, bill, SPLIT.cash_fen)
    state = await handle.result()

    assert state.status is BillStatus.PAID and state.insurance == InsuranceShare(setl_id="ORD-1", split=SPLIT)
    assert state.channel_fen == 3_000 and not state.awaiting_insurance_authorization
    [request] = world.settle_requests
    assert (request.amount_fen, request.attempt) == (10_000, 0)
    assert world.checked == [] and world.reversals == [] and world.releases == []
    [paid] = [n for n in world.notices if n.template == "bill_paid"]
    assert "统筹基金支付50.00元" in paid.params["split"] and "个人自付30.00元" in paid.params["split"]


async def test_an_unanswered_6202_is_asked_about_when_the_settlement_notice_arrives(harness: Harness) -> None:
    world = harness.world
    bill = bill_input()
    world.mobile_for.add(bill.bill_id)
    world.settle_outcomes = ["SETTLEMENT_UNKNOWN"]
    world.mobile_checks = [
        MobileSettlementCheck(state=MobileSettlementState.SETTLED, share=InsuranceShare(setl_id="ORD-2", split=SPLIT))
    ]
    handle = await authorize(harness, bill)

    async def sent() -> bool:
        return len(world.settle_requests) == 1

    await until(sent)
    # The platform's notice (a callback, signalled) wakes the flow to ask 6301 at once.
    await handle.signal(BillWorkflow.insurance_notice, "ORD-2")
    await pay(harness, bill, SPLIT.cash_fen)
    state = await handle.result()

    assert state.status is BillStatus.PAID and state.insurance is not None and state.insurance.setl_id == "ORD-2"
    # Asked, never resent and never reversed: the lost answer had settled.
    assert len(world.settle_requests) == 1 and len(world.checked) == 1 and world.reversals == []


async def test_without_a_notice_6301_is_polled_and_an_unpaid_order_paid_again(harness: Harness) -> None:
    world = harness.world
    bill = bill_input()
    world.mobile_for.add(bill.bill_id)
    world.settle_outcomes = ["SETTLEMENT_UNKNOWN", InsuranceShare(setl_id="ORD-3", split=SPLIT)]
    world.mobile_checks = [
        MobileSettlementCheck(state=MobileSettlementState.PROCESSING),
        MobileSettlementCheck(state=MobileSettlementState.UNPAID),
    ]
    handle = await authorize(harness, bill)
    await pay(harness, bill, SPLIT.cash_fen)
    state = await handle.result()

    assert state.insurance is not None and state.insurance.setl_id == "ORD-3"
    # Two polls (still processing, then known unpaid), and only then 6202 again under the next attempt's key.
    assert [r.attempt for r in world.settle_requests] == [0, 1] and len(world.checked) == 2
    assert world.reversals == []


async def test_a_mobile_bill_never_authorized_closes_with_nothing_held(harness: Harness) -> None:
    world = harness.world
    bill = bill_input(pay_window_s=1)
    world.mobile_for.add(bill.bill_id)
    before = (world.calls["create_channel_order"], world.calls["close_channel_order"])
    state = await (await open_bill(harness, bill)).result()

    assert state.status is BillStatus.CLOSED and state.insurance is None
    assert world.settle_requests == [] and world.releases == []
    assert (world.calls["create_channel_order"], world.calls["close_channel_order"]) == before
    await told(world, "bill_closed")


async def test_a_mobile_settlement_that_never_settles_falls_back_to_self_pay(harness: Harness) -> None:
    world = harness.world
    bill = bill_input()
    world.mobile_for.add(bill.bill_id)
    world.settle_outcomes = ["SETTLEMENT_UNKNOWN"]
    world.mobile_checks = [MobileSettlementCheck(state=MobileSettlementState.CLOSED)]
    handle = await authorize(harness, bill)
    await pay(harness, bill, 10_000)
    state = await handle.result()

    assert state.status is BillStatus.PAID and state.insurance is None
    assert state.insurance_refused == "医保移动支付订单未能结算"
    [release] = world.releases  # 6401 / 2202 at the platform
    assert release.cancel_visit


# --- refunds ---


def refund_input(kind: RefundKind = RefundKind.ORDINARY, amount_fen: int = 10_000) -> RefundInput:
    bill_id = f"b-{uuid.uuid4().hex[:10]}"
    return RefundInput(
        refund_id=f"{bill_id}-a1",
        bill_id=bill_id,
        patient_id="pat-1",
        channel="sandbox",
        amount_fen=amount_fen,
        reason="患者住院未能就诊",
        requested_by="u-admin",
        kind=kind,
        reason_code="patient_unable_to_attend",
        authorized_by="u-admin",
    )


async def negotiating(handle: WorkflowHandle) -> None:
    async def started() -> bool:
        return (await handle.query(RefundWorkflow.result)).status is RefundStatus.NEGOTIATING

    await until(started)


async def run_refund(h: Harness, refund: RefundInput) -> WorkflowHandle:
    return await h.client.start_workflow(
        RefundWorkflow.run, refund, id=refund_workflow_id(refund.bill_id, "a1"), task_queue=h.queue
    )


async def test_a_full_refund_reverses_insurance_then_the_channel_and_the_invoice(harness: Harness) -> None:
    world = harness.world
    refund = refund_input(RefundKind.AUTHORIZED)
    world.refund_plan = RefundPlan(refund_id="", channel_fen=3_000, insurance=SPLIT, final=True, eta="医保即时")
    result = await (await run_refund(harness, refund)).result()

    assert result.status is RefundStatus.SUCCEEDED and result.kind is RefundKind.AUTHORIZED
    assert (result.amount_fen, result.insurance_fen, result.channel_fen) == (10_000, 7_000, 3_000)
    [release] = world.releases
    assert release.bill_id == refund.bill_id and not release.cancel_visit
    [started] = [n for n in world.notices if n.template == "refund_started"]
    assert started.params == {"amount": "100.00", "eta": "医保即时"}
    red_id = invoice_workflow_id(refund.bill_id, reverse=True)
    red = await harness.client.get_workflow_handle_for(InvoiceWorkflow.run, red_id).result()
    assert red.red_invoice_no == f"RED-{refund.bill_id}"
    await told(world, "invoice_reversed")


async def test_a_refund_the_claim_refuses_pays_nothing_and_says_why(harness: Harness) -> None:
    world = harness.world
    world.claim_refusal = "REFUND_EXCEEDS_PAID"
    calls_before = world.calls["request_channel_refund"]
    result = await (await run_refund(harness, refund_input())).result()
    assert result.status is RefundStatus.FAILED and result.failure == "退款金额超过可退金额"
    assert world.calls["request_channel_refund"] == calls_before and world.releases == []
    assert [n.user_ref for n in world.notices if n.template == "refund_failed_finance"] == ["role:finance"]


async def test_a_refused_insurance_reversal_fails_the_refund_before_the_channel(harness: Harness) -> None:
    world = harness.world
    world.refund_plan = RefundPlan(refund_id="", channel_fen=3_000, insurance=SPLIT, final=True)
    world.release_refusal = "SETTLEMENT_NOT_ACTIVE"
    calls_before = world.calls["request_channel_refund"]
    result = await (await run_refund(harness, refund_input())).result()
    assert result.status is RefundStatus.FAILED and result.insurance_fen == 0
    assert world.calls["request_channel_refund"] == calls_before
    assert {"refund_failed", "refund_failed_finance"} <= {n.template for n in world.notices}


def resettling(remaining_fen: int, path: InsurancePath = InsurancePath.HOSPITAL) -> RefundPlan:
    """The plan of a partial refund beyond the self-pay part of a bill paid as SPLIT (everything left is held)."""
    held = InsuranceResettle(
        kind=BillKind.REGISTRATION,
        ref_id="visit-1",
        remaining_fen=remaining_fen,
        cash_held_fen=SPLIT.cash_fen,
        insurance_held_fen=SPLIT.total_fen - SPLIT.cash_fen,
        path=path,
    )
    return RefundPlan(refund_id="", channel_fen=SPLIT.cash_fen, insurance=SPLIT, eta="重新结算", resettle=held)


async def test_a_partial_refund_beyond_self_pay_resettles_what_remains(harness: Harness) -> None:
    world = harness.world
    refund = refund_input(amount_fen=6_000)
    world.refund_plan = resettling(4_000)
    remaining = PaymentSplit(total_fen=4_000, fund_fen=1_500, account_fen=1_000, cash_fen=1_500)
    world.settle_outcomes = [InsuranceShare(setl_id="S-new", split=remaining)]
    channel_before = world.calls["request_channel_refund"]
    result = await (await run_refund(harness, refund)).result()

    # The settlement went back whole, the remaining 40.00 was settled anew, the channel returned the cash difference.
    assert result.status is RefundStatus.SUCCEEDED and result.resettle
    assert (result.insurance_fen, result.channel_fen) == (7_000 - 2_500, 3_000 - 1_500)
    assert result.insurance_fen + result.channel_fen == refund.amount_fen
    [release] = [r for r in world.releases if r.bill_id == refund.bill_id]
    assert not release.cancel_visit
    [settled] = [r for r in world.settle_requests if r.bill_id == refund.bill_id]
    assert (settled.amount_fen, settled.attempt, settled.kind) == (4_000, 0, BillKind.REGISTRATION)
    assert world.calls["request_channel_refund"] == channel_before + 1
    # Not everything was refunded: the e-invoice stands.
    assert world.reversed_invoices == []


async def test_a_refused_resettlement_leaves_the_rest_self_pay(harness: Harness) -> None:
    world = harness.world
    refund = refund_input(amount_fen=8_000)
    world.refund_plan = resettling(2_000, InsurancePath.MOBILE)
    world.settle_outcomes = ["INSURANCE_SUSPENDED"]
    result = await (await run_refund(harness, refund)).result()

    # 医保 gave all of its part back; the remaining 20.00 is now paid in cash, the rest of the cash goes back.
    assert result.status is RefundStatus.SUCCEEDED
    assert (result.insurance_fen, result.channel_fen) == (7_000, 1_000)
    releases = [r for r in world.releases if r.bill_id == refund.bill_id]
    assert [r.cancel_visit for r in releases] == [False, True]


async def test_a_special_refund_pays_what_the_parties_agreed_to_bear(harness: Harness) -> None:
    world = harness.world
    refund = refund_input(RefundKind.SPECIAL, amount_fen=5_000)
    handle = await run_refund(harness, refund)

    await negotiating(handle)
    assert world.special_opened == [refund.refund_id]
    hospital = NegotiationEntry(party=NegotiationParty.HOSPITAL, agreed=True, amount_fen=1_000, recorded_by="u-admin")
    await handle.execute_update(RefundWorkflow.record_negotiation, hospital)
    with pytest.raises(WorkflowUpdateFailedError) as incomplete:
        await handle.execute_update(
            RefundWorkflow.conclude_negotiation, ConcludeNegotiation(approve=True, concluded_by="u-admin")
        )
    assert incomplete.value.cause.type == "NEGOTIATION_INCOMPLETE"
    with pytest.raises(WorkflowUpdateFailedError) as too_much:
        await handle.execute_update(
            RefundWorkflow.record_negotiation,
            NegotiationEntry(party=NegotiationParty.SUPPLIER, agreed=True, amount_fen=6_000, recorded_by="u-admin"),
        )
    assert too_much.value.cause.type == "NEGOTIATION_AMOUNT"
    for entry in (
        NegotiationEntry(party=NegotiationParty.SUPPLIER, agreed=True, amount_fen=2_500, recorded_by="u-admin"),
        NegotiationEntry(party=NegotiationParty.COURIER, agreed=False, note="非运输原因", recorded_by="u-admin"),
        # The courier thinks again: its latest answer is the one that counts, and both are kept.
        NegotiationEntry(party=NegotiationParty.COURIER, agreed=True, amount_fen=500, recorded_by="u-admin"),
    ):
        await handle.execute_update(RefundWorkflow.record_negotiation, entry)
    concluded = await handle.execute_update(
        RefundWorkflow.conclude_negotiation, ConcludeNegotiation(approve=True, concluded_by="u-admin")
    )
    assert concluded.status is RefundStatus.PROCESSING and concluded.amount_fen == 4_000
    assert len(concluded.negotiation) == 4 and len(world.negotiation_rows) == 4
    claimed = [r for r in world.refunds if r.refund_id == refund.refund_id]
    assert [(r.amount_fen, r.authorized_by) for r in claimed] == [(4_000, "u-admin")]
    assert (await handle.result()).status is RefundStatus.SUCCEEDED


async def test_a_special_refund_the_hospital_refuses_claims_nothing(harness: Harness) -> None:
    world = harness.world
    refund = refund_input(RefundKind.SPECIAL, amount_fen=5_000)
    handle = await run_refund(harness, refund)

    await negotiating(handle)
    with pytest.raises(WorkflowUpdateFailedError) as no_reason:
        await handle.execute_update(
            RefundWorkflow.conclude_negotiation, ConcludeNegotiation(approve=False, concluded_by="u-admin")
        )
    assert no_reason.value.cause.type == "REASON_REQUIRED"
    await handle.execute_update(
        RefundWorkflow.conclude_negotiation,
        ConcludeNegotiation(approve=False, note="药品签收时完好", concluded_by="u-admin"),
    )
    result = await handle.result()
    assert result.status is RefundStatus.REJECTED and result.failure == "药品签收时完好"
    assert [r for r in world.refunds if r.refund_id == refund.refund_id] == []


# --- a patient's refund request before the medicine leaves ---


async def paid_prescription(h: Harness, prescription_id: str | None = None) -> tuple[str, WorkflowHandle]:
    bill_id, handle = await paid(h, prescription_id)

    async def fulfilling() -> bool:
        return (await handle.query(PrescriptionWorkflow.state)).stage is RxStage.FULFILLING

    await until(fulfilling)
    return bill_id, handle


async def test_an_approved_request_withdraws_the_order_refunds_the_bill_and_voids(harness: Harness) -> None:
    world = harness.world
    bill_id, handle = await paid_prescription(harness)
    with pytest.raises(WorkflowUpdateFailedError) as early:
        await handle.execute_update(
            PrescriptionWorkflow.decide_refund, RxRefundDecision(decided_by="u-ph", approve=True)
        )
    assert early.value.cause.type == "NO_REFUND_REQUEST"
    with pytest.raises(WorkflowUpdateFailedError) as stranger:
        await handle.execute_update(
            PrescriptionWorkflow.request_refund, RxRefundRequest(patient_id="pat-2", reason="x")
        )
    assert stranger.value.cause.type == "FORBIDDEN"
    asked = await handle.execute_update(
        PrescriptionWorkflow.request_refund, RxRefundRequest(patient_id="pat-1", reason="病情好转不需要了")
    )
    assert asked.status is RxRefundStatus.PENDING
    await told(world, "refund_requested", count=2)
    assert {n.user_ref for n in world.notices if n.template == "refund_requested"} == {"role:admin", "duty:pharmacist"}

    decided = await handle.execute_update(
        PrescriptionWorkflow.decide_refund, RxRefundDecision(decided_by="u-ph", approve=True, note="同意")
    )
    assert decided.status is RxRefundStatus.REFUNDED and decided.refund_id == f"{bill_id}-p1"
    final = await handle.result()
    assert final.stage is RxStage.VOID and "患者申请退款" in (final.void_reason or "")
    [refund] = [r for r in world.refunds if r.bill_id == bill_id]
    assert (refund.kind, refund.amount_fen, refund.authorized_by) == (RefundKind.APPROVED, 300, "u-ph")
    assert world.withdrawn and world.calls["cancel_pharmacy_order"] >= 1


async def test_a_refused_request_leaves_the_prescription_fulfilling(harness: Harness) -> None:
    bill_id, handle = await paid_prescription(harness)
    await handle.execute_update(
        PrescriptionWorkflow.request_refund, RxRefundRequest(patient_id="pat-1", reason="不想要")
    )
    with pytest.raises(WorkflowUpdateFailedError) as no_reason:
        await handle.execute_update(
            PrescriptionWorkflow.decide_refund, RxRefundDecision(decided_by="u-ph", approve=False)
        )
    assert no_reason.value.cause.type == "REASON_REQUIRED"
    refused = await handle.execute_update(
        PrescriptionWorkflow.decide_refund, RxRefundDecision(decided_by="u-ph", approve=False, note="已调剂完毕")
    )
    assert refused.status is RxRefundStatus.REJECTED
    assert (await handle.query(PrescriptionWorkflow.state)).stage is RxStage.FULFILLING
    assert [r for r in harness.world.refunds if r.bill_id == bill_id] == []
    await handle.terminate("test done")


async def test_no_request_once_the_medicine_has_left(harness: Harness) -> None:
    harness.world.dispatch = DispatchStatus(left=True, stage="shipped", order_no="PH-1")
    _, handle = await paid_prescription(harness)
    with pytest.raises(WorkflowUpdateFailedError) as left:
        await handle.execute_update(
            PrescriptionWorkflow.request_refund, RxRefundRequest(patient_id="pat-1", reason="太慢了")
        )
    assert left.value.cause.type == "RX_DISPATCHED"
    await handle.terminate("test done")


# --- e-invoices ---


async def test_reversal_and_issue_each_tell_the_patient_once(harness: Harness) -> None:
    world = harness.world
    task = InvoiceTask(bill_id=f"b-{uuid.uuid4().hex[:8]}", patient_id="pat-1", reverse=True, reason="全额退款")
    for workflow_id in (invoice_workflow_id(task.bill_id, reverse=True), f"{invoice_workflow_id(task.bill_id)}-again"):
        await harness.client.execute_workflow(InvoiceWorkflow.run, task, id=workflow_id, task_queue=harness.queue)
    reversed_notices = [n for n in world.notices if n.template == "invoice_reversed" and task.bill_id in n.key]
    assert len(world.reversed_invoices) == 2 and len({n.key for n in reversed_notices}) == 1

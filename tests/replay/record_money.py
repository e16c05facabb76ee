"""Record the histories of the money paths (医保 at payment, refunds through 医保 and the channel, special refunds by
negotiation, a patient's refund request before the medicine leaves, e-invoices) under `tests/histories/`, as
`tests/replay/record.py` does for the others (same rules: record only new scenarios; never re-record to make a replay
pass).

Run with `.venv/bin/python -m tests.replay.record_money` (optionally naming scenarios).
"""

from __future__ import annotations

from models.billing import (
    ConcludeNegotiation,
    InsurancePath,
    InsuranceShare,
    MobileSettlementCheck,
    MobileSettlementState,
    NegotiationEntry,
    NegotiationParty,
    RefundKind,
    RefundPlan,
)
from models.insurance import PaymentSplit
from models.refund_request import RxRefundDecision, RxRefundRequest
from tests.replay.record import Recorder, main
from tests.workflows.fakes import FakeWorld
from tests.workflows.test_money import (
    SPLIT,
    authorize,
    bill_input,
    negotiating,
    open_bill,
    paid_prescription,
    pay,
    refund_input,
    resettling,
    told,
)
from tests.workflows.test_prescription import until
from workflows.bill import BillWorkflow, bill_workflow_id
from workflows.invoice import invoice_workflow_id
from workflows.prescription import PrescriptionWorkflow, prescription_workflow_id
from workflows.refund import RefundWorkflow, refund_workflow_id


async def bill_insured_unknown_reversed(r: Recorder) -> None:
    """The first settlement's answer never came (reversed with 2601), the second settled; the patient pays the cash
    part; the e-invoice is issued by a flow of its own."""
    world = FakeWorld()
    async with r.harness("bill-insured", world) as h:
        bill = bill_input().model_copy(update={"bill_id": "rec-bill-insured", "ref_id": "rec-visit-insured"})
        world.insurance_presented_for.add(bill.bill_id)
        world.settle_outcomes = ["SETTLEMENT_UNKNOWN", InsuranceShare(setl_id="S-rec", split=SPLIT)]
        handle = await open_bill(h, bill)
        await pay(h, bill, SPLIT.cash_fen)
        await handle.result()
        await r.save(bill_workflow_id(bill.bill_id), "Bill-insured_unknown_reversed_paid")
        await r.save(invoice_workflow_id(bill.bill_id), "Invoice-issued")


async def bill_insured_closed(r: Recorder) -> None:
    """Settled by 医保, never paid: the bill closes and the settlement is given back (2208, visit withdrawn)."""
    world = FakeWorld()
    async with r.harness("bill-insured-closed", world) as h:
        bill = bill_input(pay_window_s=1).model_copy(update={"bill_id": "rec-bill-closed", "ref_id": "rec-visit-c"})
        world.insurance_presented_for.add(bill.bill_id)
        world.settle_outcomes = [InsuranceShare(setl_id="S-rec-c", split=SPLIT)]
        await (await open_bill(h, bill)).result()
        await r.save(bill_workflow_id(bill.bill_id), "Bill-insured_closed_released")


async def bill_mobile_authorized_unknown_notified(r: Recorder) -> None:
    """医保移动支付: the bill waits for the patient's authorization, 6202's answer is lost, the platform's settlement
    notice wakes the flow to ask 6301, which finds it settled; the patient pays the cash part."""
    world = FakeWorld()
    async with r.harness("bill-mobile", world) as h:
        bill = bill_input().model_copy(update={"bill_id": "rec-bill-mobile", "ref_id": "rec-visit-mobile"})
        world.mobile_for.add(bill.bill_id)
        world.settle_outcomes = ["SETTLEMENT_UNKNOWN"]
        share = InsuranceShare(setl_id="ORD-rec", split=SPLIT)
        world.mobile_checks = [MobileSettlementCheck(state=MobileSettlementState.SETTLED, share=share)]
        handle = await authorize(h, bill)

        async def sent() -> bool:
            return len(world.settle_requests) == 1

        await until(sent)
        await handle.signal(BillWorkflow.insurance_notice, "ORD-rec")
        await pay(h, bill, SPLIT.cash_fen)
        await handle.result()
        await r.save(bill_workflow_id(bill.bill_id), "Bill-mobile_authorized_unknown_notified_paid")


async def refund_resettled(r: Recorder) -> None:
    """A partial refund beyond the self-pay part: the settlement goes back whole, the remaining items are settled
    anew, the channel returns the cash difference."""
    world = FakeWorld()
    async with r.harness("refund-resettle", world) as h:
        refund = refund_input(amount_fen=6_000).model_copy(
            update={"bill_id": "rec-bill-rs", "refund_id": "rec-bill-rs-a1"}
        )
        world.refund_plan = resettling(4_000, InsurancePath.HOSPITAL)
        remaining = PaymentSplit(total_fen=4_000, fund_fen=1_500, account_fen=1_000, cash_fen=1_500)
        world.settle_outcomes = [InsuranceShare(setl_id="S-rec-new", split=remaining)]
        workflow_id = refund_workflow_id(refund.bill_id, "a1")
        await h.client.execute_workflow(RefundWorkflow.run, refund, id=workflow_id, task_queue=h.queue)
        await r.save(workflow_id, "Refund-partial_beyond_self_pay_resettled")


async def refund_insurance_and_channel(r: Recorder) -> None:
    """An authorized refund of everything left: 医保 part through the platform, the rest along the channel, the
    invoice reversed in red."""
    world = FakeWorld()
    async with r.harness("refund-split", world) as h:
        refund = refund_input(RefundKind.AUTHORIZED).model_copy(
            update={"bill_id": "rec-bill-r", "refund_id": "rec-bill-r-a1"}
        )
        world.refund_plan = RefundPlan(refund_id="", channel_fen=3_000, insurance=SPLIT, final=True, eta="即时")
        workflow_id = refund_workflow_id(refund.bill_id, "a1")
        await h.client.execute_workflow(RefundWorkflow.run, refund, id=workflow_id, task_queue=h.queue)
        await r.save(workflow_id, "Refund-insurance_then_channel_final")
        await r.save(invoice_workflow_id(refund.bill_id, reverse=True), "Invoice-reversed")


async def refund_special(r: Recorder) -> None:
    """A special refund: the three parties' answers recorded (one changed), concluded, the agreed sum refunded."""
    world = FakeWorld()
    async with r.harness("refund-special", world) as h:
        refund = refund_input(RefundKind.SPECIAL, amount_fen=5_000).model_copy(
            update={"bill_id": "rec-bill-s", "refund_id": "rec-bill-s-a1"}
        )
        workflow_id = refund_workflow_id(refund.bill_id, "a1")
        handle = await h.client.start_workflow(RefundWorkflow.run, refund, id=workflow_id, task_queue=h.queue)

        await negotiating(handle)
        for party, agreed, amount in (
            (NegotiationParty.HOSPITAL, True, 1_000),
            (NegotiationParty.SUPPLIER, True, 2_500),
            (NegotiationParty.COURIER, False, 0),
            (NegotiationParty.COURIER, True, 500),
        ):
            entry = NegotiationEntry(party=party, agreed=agreed, amount_fen=amount, recorded_by="u-admin")
            await handle.execute_update(RefundWorkflow.record_negotiation, entry)
        await handle.execute_update(
            RefundWorkflow.conclude_negotiation, ConcludeNegotiation(approve=True, concluded_by="u-admin")
        )
        await handle.result()
        await r.save(workflow_id, "Refund-special_negotiated_paid")


async def rx_refund_requested_approved(r: Recorder) -> None:
    """Paid, at the pharmacy: the patient asks for a refund, the pharmacist approves, the fulfilment is withdrawn,
    the whole bill refunded, the prescription void."""
    world = FakeWorld()
    async with r.harness("rx-refund-request", world) as h:
        bill_id, handle = await paid_prescription(h, "rec-rx-refund")
        await handle.execute_update(
            PrescriptionWorkflow.request_refund, RxRefundRequest(patient_id="pat-1", reason="病情好转")
        )
        await told(world, "refund_requested", count=2)
        await handle.execute_update(
            PrescriptionWorkflow.decide_refund, RxRefundDecision(decided_by="u-ph", approve=True, note="同意")
        )
        await handle.result()
        await r.save(prescription_workflow_id("rec-rx-refund"), "Prescription-paid_refund_requested_approved_void")
        await r.save(refund_workflow_id(bill_id, "p1"), "Refund-approved_before_dispatch")


SCENARIOS = {
    "Bill-insured_unknown_reversed_paid": bill_insured_unknown_reversed,
    "Bill-insured_closed_released": bill_insured_closed,
    "Bill-mobile_authorized_unknown_notified_paid": bill_mobile_authorized_unknown_notified,
    "Refund-partial_beyond_self_pay_resettled": refund_resettled,
    "Refund-insurance_then_channel_final": refund_insurance_and_channel,
    "Refund-special_negotiated_paid": refund_special,
    "Prescription-paid_refund_requested_approved_void": rx_refund_requested_approved,
}


if __name__ == "__main__":
    main(SCENARIOS)

"""Record the histories of the Fulfilment paths added for routing to a pharmacy, the signed re-check and the refill
reminder, and of the RefillReminder and AdverseReaction flows, under `tests/histories/`, as `tests/replay/record.py`
does for the others (same rules: record only new scenarios; never re-record to make a replay pass).

Run with `.venv/bin/python -m tests.replay.record_fulfilment` (optionally naming scenarios).
"""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.client import WorkflowHandle

from models.aftercare import AdverseReactionInput, AdverseReactionResponse, ReactionAction, ReactionSeverity
from models.fulfilment import (
    CourierEvent,
    CourierStatus,
    DispenseCheck,
    FulfilmentInput,
    FulfilmentStage,
    PharmacyRoute,
    SignOff,
)
from models.prescription import PickupMethod
from tests.replay.record import Recorder, main
from tests.workflows.conftest import Harness
from tests.workflows.fakes import FakeWorld
from tests.workflows.test_prescription import until
from workflows.adverse_reaction import AdverseReactionWorkflow, adverse_reaction_workflow_id
from workflows.fulfilment import FulfilmentWorkflow, fulfilment_workflow_id
from workflows.refill import refill_workflow_id

PARTNER = PharmacyRoute(
    pharmacy_id="tongren",
    name="同仁堂东城店",
    own=False,
    reason="配送到家，配送地址在其配送范围（北京市东城区）内，饮片库存充足",
    passed_over=["本院药房：库存不足（茯苓缺65克）"],
)


def _partner_world(**changes: object) -> FakeWorld:
    world = FakeWorld()
    world.route = PARTNER
    world.refill_after_s = 1
    for name, value in changes.items():
        setattr(world, name, value)
    return world


async def _fulfilment(h: Harness, rx_id: str, pickup: PickupMethod) -> WorkflowHandle:
    return await h.client.start_workflow(
        FulfilmentWorkflow.run,
        FulfilmentInput(prescription_id=rx_id, patient_id="pat-1", pickup=pickup, delivery_sla_s=3600),
        id=fulfilment_workflow_id(rx_id),
        task_queue=h.queue,
    )


async def _stage(handle: WorkflowHandle, *stages: FulfilmentStage) -> None:
    async def reached() -> bool:
        state = await handle.query(FulfilmentWorkflow.state)
        return state.pharmacy_order_no is not None and (not stages or state.stage in stages)

    await until(reached)


async def routed_delivered_refill(r: Recorder) -> None:
    """Routed to a partner, re-checked there (signed), shipped, delivered, signed off: the refill reminder flow
    starts, sleeps and reminds."""
    async with r.harness("fulfil-routed", _partner_world()) as h:
        rx_id = "rec-rx-routed"
        handle = await _fulfilment(h, rx_id, PickupMethod.DELIVERY)
        await _stage(handle)
        check = DispenseCheck(pharmacist_id="ph-tr", approve=True, note="适宜", pharmacy_id=PARTNER.pharmacy_id)
        await handle.execute_update(FulfilmentWorkflow.dispense, check)
        await _stage(handle, FulfilmentStage.SHIPPED)
        waybill = (await handle.query(FulfilmentWorkflow.state)).waybill_no or ""
        await handle.signal(
            FulfilmentWorkflow.courier_event,
            CourierEvent(waybill_no=waybill, status=CourierStatus.DELIVERED, occurred_at=datetime.now(UTC)),
        )
        await _stage(handle, FulfilmentStage.DELIVERED)
        await handle.execute_update(FulfilmentWorkflow.sign_off, SignOff(actor_id="pat-1", pickup_code="123456"))
        assert (await handle.result()).stage is FulfilmentStage.SIGNED
        refill = h.client.get_workflow_handle(refill_workflow_id(rx_id))
        assert (await refill.result())["reminded"]
        await r.save(handle.id, "Fulfilment-routed_partner_rechecked_delivered_signed_refill")
        await r.save(refill.id, "RefillReminder-reminded")


async def routed_recheck_refused(r: Recorder) -> None:
    async with r.harness("fulfil-refused", _partner_world()) as h:
        handle = await _fulfilment(h, "rec-rx-recheck-no", PickupMethod.PHARMACY)
        await _stage(handle)
        refused = DispenseCheck(pharmacist_id="ph-tr", approve=False, note="附子未注明先煎", pharmacy_id="tongren")
        await handle.execute_update(FulfilmentWorkflow.dispense, refused)
        assert (await handle.result()).stage is FulfilmentStage.FAILED
        await r.save(handle.id, "Fulfilment-routed_partner_recheck_refused")


async def no_pharmacy(r: Recorder) -> None:
    async with r.harness("fulfil-nowhere", _partner_world(no_pharmacy="没有能够调剂该处方的药房：不提供代煎")) as h:
        handle = await _fulfilment(h, "rec-rx-nowhere", PickupMethod.DELIVERY)
        assert (await handle.result()).stage is FulfilmentStage.FAILED
        await r.save(handle.id, "Fulfilment-no_pharmacy")


async def refill_renewed(r: Recorder) -> None:
    """Routed to the own pharmacy, picked up there; the prescription was renewed before the reminder was due."""
    world = _partner_world(refill_skip="已续方（处方 rec-rx-2）")
    world.route = FakeWorld().route
    async with r.harness("fulfil-renewed", world) as h:
        rx_id = "rec-rx-renewed"
        handle = await _fulfilment(h, rx_id, PickupMethod.HOSPITAL)
        await _stage(handle)
        await handle.execute_update(FulfilmentWorkflow.dispense, DispenseCheck(pharmacist_id="ph-1", approve=True))
        await _stage(handle, FulfilmentStage.DELIVERED)
        await handle.execute_update(FulfilmentWorkflow.sign_off, SignOff(actor_id="pat-1", pickup_code="123456"))
        await handle.result()
        refill = h.client.get_workflow_handle(refill_workflow_id(rx_id))
        assert not (await refill.result())["reminded"]
        await r.save(refill.id, "RefillReminder-renewed_skipped")


async def _report(h: Harness, report_id: str, severity: ReactionSeverity, sla_s: int) -> WorkflowHandle:
    return await h.client.start_workflow(
        AdverseReactionWorkflow.run,
        AdverseReactionInput(
            report_id=report_id,
            prescription_id="rec-rx-1",
            patient_id="pat-1",
            doctor_id="doc-1",
            dispensing_pharmacist_id="ph-2",
            severity=severity,
            symptoms="服药后胃部不适",
            response_sla_s=sla_s,
        ),
        id=adverse_reaction_workflow_id(report_id),
        task_queue=h.queue,
    )


async def reaction_answered(r: Recorder) -> None:
    async with r.harness("adr-answered") as h:
        handle = await _report(h, "rec-rx-1-adr1", ReactionSeverity.SEVERE, 600)

        async def recorded() -> bool:
            return bool(h.world.reactions)

        await until(recorded)
        reply = AdverseReactionResponse(pharmacist_id="ph-2", action=ReactionAction.SEE_DOCTOR, advice="请尽快就医。")
        await handle.execute_update(AdverseReactionWorkflow.respond, reply)
        await handle.result()
        await r.save(handle.id, "AdverseReaction-severe_answered")


async def reaction_overdue(r: Recorder) -> None:
    async with r.harness("adr-overdue") as h:
        handle = await _report(h, "rec-rx-1-adr2", ReactionSeverity.MILD, 1)

        async def escalated() -> bool:
            return sum(n.template == "adverse_reaction_overdue" for n in h.world.notices) == 2

        await until(escalated, attempts=100)
        reply = AdverseReactionResponse(pharmacist_id="ph-1", action=ReactionAction.CONTINUE, advice="继续服用。")
        await handle.execute_update(AdverseReactionWorkflow.respond, reply)
        await handle.result()
        await r.save(handle.id, "AdverseReaction-overdue_then_answered")


SCENARIOS = {
    "Fulfilment-routed_partner_rechecked_delivered_signed_refill": routed_delivered_refill,
    "Fulfilment-routed_partner_recheck_refused": routed_recheck_refused,
    "Fulfilment-no_pharmacy": no_pharmacy,
    "RefillReminder-renewed_skipped": refill_renewed,
    "AdverseReaction-severe_answered": reaction_answered,
    "AdverseReaction-overdue_then_answered": reaction_overdue,
}


if __name__ == "__main__":
    main(SCENARIOS)

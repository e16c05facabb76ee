"""Fulfilment on its own: hospital pickup, the pickup-code lock after wrong codes, and the pharmacist's unlock."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from models.fulfilment import DispenseCheck, FulfilmentInput, FulfilmentStage, SignOff, UnlockSignOff
from models.prescription import PickupMethod
from tests.workflows.conftest import Harness
from workflows.fulfilment import MAX_PICKUP_ATTEMPTS, FulfilmentWorkflow, fulfilment_workflow_id


async def ready_for_pickup(h: Harness) -> WorkflowHandle:
    rx_id = f"rx-{uuid.uuid4().hex[:8]}"
    handle = await h.client.start_workflow(
        FulfilmentWorkflow.run,
        FulfilmentInput(prescription_id=rx_id, patient_id="pat-1", pickup=PickupMethod.HOSPITAL, delivery_sla_s=60),
        id=fulfilment_workflow_id(rx_id),
        task_queue=h.queue,
    )
    for _ in range(100):
        if (await handle.query(FulfilmentWorkflow.state)).pharmacy_order_no:
            break
        await asyncio.sleep(0.05)
    await handle.execute_update(FulfilmentWorkflow.dispense, DispenseCheck(pharmacist_id="ph-1", approve=True))
    for _ in range(100):  # the pickup code goes out before the parcel counts as ready at the counter
        if (await handle.query(FulfilmentWorkflow.state)).stage is FulfilmentStage.DELIVERED:
            break
        await asyncio.sleep(0.05)
    return handle


async def test_wrong_codes_lock_sign_off_until_a_pharmacist_unlocks_it(harness: Harness) -> None:
    handle = await ready_for_pickup(harness)

    with pytest.raises(WorkflowUpdateFailedError) as not_locked:
        await handle.execute_update(FulfilmentWorkflow.unlock_sign_off, UnlockSignOff(pharmacist_id="ph-1", reason="x"))
    assert not_locked.value.cause.type == "SIGN_OFF_NOT_LOCKED"

    for attempt in range(MAX_PICKUP_ATTEMPTS):
        result = await handle.execute_update(
            FulfilmentWorkflow.sign_off, SignOff(actor_id="pat-1", pickup_code="000000")
        )
        assert not result.accepted and result.attempts_left == MAX_PICKUP_ATTEMPTS - attempt - 1
    with pytest.raises(WorkflowUpdateFailedError) as locked:
        await handle.execute_update(FulfilmentWorkflow.sign_off, SignOff(actor_id="pat-1", pickup_code="123456"))
    assert locked.value.cause.type == "PICKUP_CODE_LOCKED"

    unlocked = await handle.execute_update(
        FulfilmentWorkflow.unlock_sign_off, UnlockSignOff(pharmacist_id="ph-1", reason="已当面核验收件人身份证件")
    )
    assert unlocked.attempts_left == MAX_PICKUP_ATTEMPTS
    signed = await handle.execute_update(FulfilmentWorkflow.sign_off, SignOff(actor_id="ph-1", pickup_code="123456"))
    assert signed.accepted
    final = await handle.result()
    assert final.stage is FulfilmentStage.SIGNED
    assert harness.world.calls["book_courier"] == 0

"""Fulfilment (8.3.4, 8.3.7–8.3.9): routing → pharmacy order → signed re-check and dispensing → courier → sign-off by
pickup code → refill reminder.

The paid prescription is routed by rule to the hospital's own pharmacy or a partner pharmacy; that pharmacy's
pharmacist re-checks it and signs the decision (a refusal cancels the order and the Prescription refunds). The courier
reports by webhook (signals); when it goes quiet the flow polls its tracking instead. Sign-off needs the code the
patient received; after too many wrong codes the parcel is held for staff. Once signed, a RefillReminder flow of its
own waits for the end of the prescribed days.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.fulfilment import FulfilmentActivities
    from models.fulfilment import (
        OWN_PHARMACY,
        CourierEvent,
        CourierStatus,
        DispenseCheck,
        FulfilmentInput,
        FulfilmentStage,
        FulfilmentState,
        PharmacyOrder,
        PharmacyRoute,
        Recheck,
        RefillInput,
        Shipment,
        SignOff,
        SignOffResult,
        UnlockSignOff,
    )
    from models.prescription import PickupMethod
    from models.signature import SignatureRecord
    from workflows.refill import RefillReminderWorkflow, refill_workflow_id
    from workflows.steps import Notices, call, db


TRACKING_POLL = timedelta(hours=1)
MAX_PICKUP_ATTEMPTS = 5

# The prescription goes to the pharmacy the routing rule picks; earlier flows sent every order to the own pharmacy.
PHARMACY_ROUTING = "pharmacy-routing"
# The dispensing pharmacist's re-check is SM2-signed and goes on the ledger; earlier flows recorded it unsigned.
SIGNED_RECHECK = "signed-recheck"
# Signing for the medicine starts the refill reminder; earlier flows ended there.
REFILL_REMINDER = "refill-reminder"


def fulfilment_workflow_id(prescription_id: str) -> str:
    return f"fulfil-{prescription_id}"


@workflow.defn(name="Fulfilment")
class FulfilmentWorkflow:
    @workflow.init
    def __init__(self, fulfilment: FulfilmentInput) -> None:
        self._notices = Notices()
        self._input = fulfilment
        self._state = FulfilmentState(
            prescription_id=fulfilment.prescription_id,
            stage=FulfilmentStage.AT_PHARMACY,
            pickup=fulfilment.pickup,
            attempts_left=MAX_PICKUP_ATTEMPTS,
        )
        self._dispense: DispenseCheck | None = None
        self._lock = asyncio.Lock()
        self._signed_recheck = False

    @workflow.run
    async def run(self, fulfilment: FulfilmentInput) -> FulfilmentState:
        rx_id = fulfilment.prescription_id
        patient = f"patient:{fulfilment.patient_id}"
        # Every patch is asked before the first step. Asked just after a local activity, a replay could answer
        # otherwise than the first run did: replay resolves the activity at once, before it has seen the patch
        # markers of the workflow task that followed it (a query arriving meanwhile splits those tasks).
        # Flows already running before these patches keep their old path to the end.
        routing = workflow.patched(PHARMACY_ROUTING)
        self._signed_recheck = workflow.patched(SIGNED_RECHECK)
        refill = workflow.patched(REFILL_REMINDER)
        await self._record()
        pharmacy: tuple[str, ...] = ()  # the routed pharmacy's id, for the steps that talk to it
        try:
            if routing:
                route: PharmacyRoute = await call(FulfilmentActivities.route_prescription, rx_id)
                self._state.pharmacy = route
                pharmacy = (route.pharmacy_id,)
                await self._record()
                self._notices.send("routed", patient, "rx_routed", pharmacy=route.name, reason=route.reason)
            order: PharmacyOrder = await call(FulfilmentActivities.submit_to_pharmacy, rx_id, *pharmacy)
        except ActivityError as failure:
            return await self._fail(_reason(failure, "药房无法接单"))
        self._state.pharmacy_order_no = order.order_no
        await self._record()

        await workflow.wait_condition(lambda: self._dispense is not None and not self._lock.locked())
        if self._dispense is not None and not self._dispense.approve:
            await call(FulfilmentActivities.cancel_pharmacy_order, rx_id, order.order_no, *pharmacy)
            return await self._fail(f"调剂药师复核未通过：{self._dispense.note}")
        self._state.stage = FulfilmentStage.DISPENSED
        await self._record()
        code: str = await db(FulfilmentActivities.issue_pickup_code, rx_id)
        self._notices.send("pickup-code", patient, "pickup_code", code=code)

        if fulfilment.pickup is PickupMethod.DELIVERY:
            shipment: Shipment = await call(FulfilmentActivities.book_courier, rx_id)
            self._state.waybill_no = shipment.waybill_no
            self._state.stage = FulfilmentStage.SHIPPED
            await self._record()
            self._notices.send("shipped", patient, "shipped", waybill_no=shipment.waybill_no)
            await self._await_delivery(fulfilment, shipment.waybill_no)
            self._notices.send("delivered", patient, "delivered")
        else:
            self._state.stage = FulfilmentStage.DELIVERED
            await self._record()

        await workflow.wait_condition(lambda: self._state.stage is FulfilmentStage.SIGNED)
        await self._record()
        self._notices.send("signed", patient, "signed", prescription_id=rx_id)
        if refill:
            # Its own flow, left running when this one ends: the prescribed days run on after delivery.
            await workflow.start_child_workflow(
                RefillReminderWorkflow.run,
                RefillInput(prescription_id=rx_id, patient_id=fulfilment.patient_id, signed_at=workflow.now()),
                id=refill_workflow_id(rx_id),
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        await self._notices.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _await_delivery(self, fulfilment: FulfilmentInput, waybill_no: str) -> None:
        """Webhooks move the stage; if none arrive for a while, ask the courier's tracking."""
        # Past SHIPPED is enough: a sign-off may already have landed while this step was still being scheduled.
        delivered = lambda: self._state.stage is not FulfilmentStage.SHIPPED  # noqa: E731
        deadline = workflow.now() + timedelta(seconds=fulfilment.delivery_sla_s)
        while not delivered():
            try:
                await workflow.wait_condition(delivered, timeout=TRACKING_POLL)
            except TimeoutError:
                events: list[CourierEvent] = await call(FulfilmentActivities.track_shipment, waybill_no)
                for event in events:
                    self._apply(event)
                if workflow.now() > deadline and not delivered():
                    workflow.logger.warning("delivery is past its SLA", extra={"waybill_no": waybill_no})
        await self._record()

    def _apply(self, event: CourierEvent) -> None:
        if event in self._state.events:
            return
        self._state.events.append(event)
        if event.status is CourierStatus.DELIVERED and self._state.stage is FulfilmentStage.SHIPPED:
            self._state.stage = FulfilmentStage.DELIVERED

    async def _record(self) -> None:
        await db(FulfilmentActivities.record_fulfilment, self._input, self._state)

    async def _fail(self, reason: str) -> FulfilmentState:
        self._state.stage = FulfilmentStage.FAILED
        self._state.failure_reason = reason
        await self._record()
        await self._notices.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    # --- messages ---

    @workflow.signal
    def courier_event(self, event: CourierEvent) -> None:
        if event.waybill_no == self._state.waybill_no:
            self._apply(event)

    @workflow.update
    async def dispense(self, check: DispenseCheck) -> FulfilmentState:
        """The routed pharmacy's pharmacist re-checks the prescription (8.3.7.2): approve to dispense, or refuse with
        a reason (the order is cancelled and the Prescription refunds). Either decision is signed."""
        async with self._lock:
            # Two decisions may pass their validators in one workflow task: the first to run decides.
            if self._dispense is not None:
                raise ApplicationError("处方已复核", type="NOT_AWAITING_DISPENSING")
            if self._signed_recheck:
                signature: SignatureRecord = await call(
                    FulfilmentActivities.sign_recheck, self._input.prescription_id, check
                )
                self._state.recheck = Recheck(
                    pharmacist_id=check.pharmacist_id,
                    pharmacy_id=check.pharmacy_id,
                    approve=check.approve,
                    note=check.note,
                    signature=signature,
                )
            self._dispense = check
        await workflow.wait_condition(lambda: self._state.stage is not FulfilmentStage.AT_PHARMACY)
        return self._state

    @dispense.validator
    def _validate_dispense(self, check: DispenseCheck) -> None:
        if self._state.stage is not FulfilmentStage.AT_PHARMACY or self._dispense is not None or self._lock.locked():
            raise ApplicationError("处方当前不在待调剂状态", type="NOT_AWAITING_DISPENSING")
        if self._state.pharmacy_order_no is None:
            raise ApplicationError("药房尚未接单", type="NOT_AWAITING_DISPENSING")
        routed = self._state.pharmacy.pharmacy_id if self._state.pharmacy else OWN_PHARMACY
        if check.pharmacy_id != routed:
            raise ApplicationError("该处方不由您所在的药房调剂", type="NOT_THIS_PHARMACY")
        if not check.approve and not check.note.strip():
            raise ApplicationError("复核不通过须填写原因", type="REASON_REQUIRED")

    @workflow.update
    async def sign_off(self, request: SignOff) -> SignOffResult:
        async with self._lock:
            matched: bool = await db(
                FulfilmentActivities.verify_pickup_code, self._input.prescription_id, request.pickup_code
            )
            left = (self._state.attempts_left or 0) - (0 if matched else 1)
            self._state.attempts_left = left
            if matched:
                self._state.stage = FulfilmentStage.SIGNED
        return SignOffResult(accepted=matched, attempts_left=left)

    @sign_off.validator
    def _validate_sign_off(self, request: SignOff) -> None:
        if self._state.stage is not FulfilmentStage.DELIVERED:
            raise ApplicationError("药品尚未送达或已签收", type="NOT_AWAITING_SIGN_OFF")
        if not self._state.attempts_left:
            raise ApplicationError("提货码错误次数过多，请联系药房工作人员", type="PICKUP_CODE_LOCKED")

    @workflow.update
    def unlock_sign_off(self, request: UnlockSignOff) -> FulfilmentState:
        workflow.logger.info("sign-off unlocked", extra={"pharmacist_id": request.pharmacist_id})
        self._state.attempts_left = MAX_PICKUP_ATTEMPTS
        return self._state

    @unlock_sign_off.validator
    def _validate_unlock(self, request: UnlockSignOff) -> None:
        if self._state.stage is not FulfilmentStage.DELIVERED or self._state.attempts_left:
            raise ApplicationError("签收未被锁定", type="SIGN_OFF_NOT_LOCKED")

    @workflow.query
    def state(self) -> FulfilmentState:
        return self._state


def _reason(failure: ActivityError, default: str) -> str:
    cause = failure.cause
    return str(cause.message) if isinstance(cause, ApplicationError) and cause.message else default

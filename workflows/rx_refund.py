"""A patient's refund request for a paid prescription whose medicine has not left the pharmacy (8.4.2), mixed into
the Prescription flow: the patient asks (`request_refund`), the hospital decides (`decide_refund`, a pharmacist or an
administrator). On approval the fulfilment is stopped (its flow cancelled, the pharmacy order withdrawn) and the
whole bill goes back along its original paths, 医保 part included; the prescription is then void.

The medicine's whereabouts are checked when the patient asks and again when the hospital approves. Stopping the
fulfilment cancels its flow; a courier booked in the instant between that check and the cancellation would leave the
parcel on its way while the bill is refunded (the approval then says too late only if the check saw it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.fulfilment import FulfilmentActivities
    from activities.refund_requests import RefundRequestActivities
    from models.billing import BillInput, RefundInput, RefundKind, RefundResult, RefundStatus
    from models.duty import ON_DUTY_PHARMACISTS
    from models.fulfilment import FulfilmentState
    from models.prescription import PrescriptionInput, PrescriptionState, RxStage
    from models.refund_request import (
        DispatchStatus,
        RxRefundDecision,
        RxRefundRequest,
        RxRefundState,
        RxRefundStatus,
    )
    from workflows.refund import RefundWorkflow, refund_workflow_id
    from workflows.steps import Notices, call, db


# Flows whose fulfilment started before this patch take no refund requests.
RX_REFUND_REQUESTS = "rx-refund-requests"
# Who decides: the hospital's pharmacists on duty and the administrators.
DECIDERS = ("role:admin", ON_DUTY_PHARMACISTS)


class PrescriptionRefundRequests:
    """The refund-request part of the Prescription flow; it provides `_state`, `_rx`, `_notices`, `_lock`, `_void`."""

    _state: PrescriptionState
    _rx: PrescriptionInput
    _notices: Notices
    _lock: asyncio.Lock
    # Set while fulfilling: the fulfilment flow, whether requests are taken, the request and its approval.
    _fulfilment: Any = None
    _takes_requests = False
    _refund_request: RxRefundState | None = None
    _withdrawn = False

    async def _void(self, reason: str) -> PrescriptionState:
        raise NotImplementedError

    async def _fulfilment_result(self) -> FulfilmentState | None:
        """The fulfilment's end, or None when it was withdrawn at the patient's request."""
        try:
            fulfilled: FulfilmentState = await self._fulfilment
        except ChildWorkflowError:
            if not self._withdrawn:
                raise
            return None
        return None if self._withdrawn else fulfilled

    async def _refund_withdrawn(self, bill: BillInput) -> PrescriptionState:
        """Withdraw the pharmacy order, refund the whole bill, and void the prescription."""
        request = self._refund_request
        assert request is not None
        rx_id = self._rx.prescription_id
        found: DispatchStatus = await db(RefundRequestActivities.withdraw_fulfilment, rx_id)
        if found.order_no:
            await call(FulfilmentActivities.cancel_pharmacy_order, rx_id, found.order_no, found.pharmacy_id)
        refund = RefundInput(
            refund_id=f"{bill.bill_id}-p1",
            bill_id=bill.bill_id,
            patient_id=self._rx.patient_id,
            channel=self._rx.channel,
            amount_fen=bill.amount_fen,
            reason=f"患者申请退款：{request.reason}",
            requested_by=self._rx.patient_id,
            kind=RefundKind.APPROVED,
            reason_code="patient_request_before_dispatch",
            authorized_by=request.decided_by,
        )
        result: RefundResult = await workflow.execute_child_workflow(
            RefundWorkflow.run, refund, id=refund_workflow_id(bill.bill_id, "p1")
        )
        request.refund_id = result.refund_id
        request.status = RxRefundStatus.REFUNDED if result.status is RefundStatus.SUCCEEDED else RxRefundStatus.FAILED
        return await self._void(f"患者申请退款，医院已同意（{request.reason}）")

    @workflow.update
    async def request_refund(self, request: RxRefundRequest) -> RxRefundState:
        await workflow.wait_condition(lambda: self._fulfilment is not None)  # its start may still be under way
        async with self._lock:
            found: DispatchStatus = await db(RefundRequestActivities.dispatch_status, self._rx.prescription_id)
            if found.left:
                raise ApplicationError("药品已出库，不能申请退款；如有问题请联系医院申请特殊退款", type="RX_DISPATCHED")
            self._refund_request = RxRefundState(
                status=RxRefundStatus.PENDING, reason=request.reason, requested_at=workflow.now()
            )
        asked = self._refund_request.requested_at.isoformat()
        for recipient in DECIDERS:
            self._notices.send(
                f"refund-requested:{asked}:{recipient}",
                recipient,
                "refund_requested",
                prescription_id=self._rx.prescription_id,
                reason=request.reason,
            )
        return self._refund_request

    @request_refund.validator
    def _validate_request_refund(self, request: RxRefundRequest) -> None:
        if request.patient_id != self._rx.patient_id:
            raise ApplicationError("无权操作该处方", type="FORBIDDEN")
        if self._state.stage is not RxStage.FULFILLING or not self._takes_requests:
            raise ApplicationError("处方当前不能申请退款", type="RX_NOT_REFUNDABLE")
        if self._refund_request is not None and self._refund_request.status is not RxRefundStatus.REJECTED:
            raise ApplicationError("已提交退款申请", type="REFUND_ALREADY_REQUESTED")

    @workflow.update
    async def decide_refund(self, decision: RxRefundDecision) -> RxRefundState:
        request = self._refund_request
        assert request is not None  # the validator saw a pending request
        request.decided_by = decision.decided_by
        request.note = decision.note
        patient = f"patient:{self._rx.patient_id}"
        if not decision.approve:
            request.status = RxRefundStatus.REJECTED
            self._notices.send(
                f"refund-rejected:{request.requested_at.isoformat()}",
                patient,
                "refund_request_rejected",
                prescription_id=self._rx.prescription_id,
                reason=decision.note,
            )
            return request
        async with self._lock:
            found: DispatchStatus = await db(RefundRequestActivities.dispatch_status, self._rx.prescription_id)
            if found.left:
                request.status = RxRefundStatus.TOO_LATE
                return request
            self._withdrawn = True
            self._fulfilment.cancel()
        await workflow.wait_condition(lambda: self._state.stage is RxStage.VOID)
        return request

    @decide_refund.validator
    def _validate_decide_refund(self, decision: RxRefundDecision) -> None:
        if self._refund_request is None or self._refund_request.status is not RxRefundStatus.PENDING:
            raise ApplicationError("没有待审核的退款申请", type="NO_REFUND_REQUEST")
        if self._withdrawn or self._lock.locked():
            raise ApplicationError("退款申请正在处理中", type="NO_REFUND_REQUEST")
        if not decision.approve and not decision.note.strip():
            raise ApplicationError("不同意退款须说明理由", type="REASON_REQUIRED")

    @workflow.query
    def refund_request(self) -> RxRefundState | None:
        return self._refund_request

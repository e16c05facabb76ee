"""Prescription (8.2.6, 8.3.1–8.3.3): checked, signed, reviewed, confirmed, paid, then fulfilled.

  draft ─sign→ awaiting_review ─approve→ awaiting_confirmation ─confirm→ awaiting_payment ─paid→ fulfilling → completed
    ▲  revise      │ reject                    │ window passes               │ unpaid                │ pharmacy fails
    └── returned ◄─┘                           ▼                             ▼                       ▼
                                              void                          void           void (paid amount refunded)
The rule pre-review runs on every version, and again when the doctor signs, so stock that ran short meanwhile still
blocks issuing (8.2.6.4). A `block` verdict cannot be signed; `sign_again` needs a written reason, and the doctor's
second signature is recorded with it. Only the pharmacist's approval makes the prescription valid.
A returned prescription is either revised, or signed again unchanged with the doctor's justification: it then goes
back to review as *forced* (8.3.1.4), with an audit row and a notice that tells the pharmacists so. A pharmacist may
claim a prescription under review for a while, so no other pharmacist reviews it meanwhile.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.prescriptions import PrescriptionActivities
    from models.billing import BillInput, BillKind, BillState, BillStatus, RefundInput
    from models.duty import ON_DUTY_PHARMACISTS
    from models.fulfilment import FulfilmentInput, FulfilmentStage
    from models.prescription import (
        CheckResult,
        ClaimReview,
        ConfirmPrescription,
        ForcedThrough,
        PickupMethod,
        PrescriptionDraft,
        PrescriptionInput,
        PrescriptionState,
        PricedPrescription,
        ReviewPrescription,
        RevisePrescription,
        RxCheckRequest,
        RxStage,
        Severity,
        SignPrescription,
        SignRequest,
        Verdict,
    )
    from models.signature import SignatureRecord
    from workflows.bill import BILL_OPENED_SIGNAL, BillWorkflow, bill_workflow_id
    from workflows.fulfilment import FulfilmentWorkflow, fulfilment_workflow_id
    from workflows.refund import RefundWorkflow, refund_workflow_id
    from workflows.rx_refund import RX_REFUND_REQUESTS, PrescriptionRefundRequests
    from workflows.steps import Notices, call, db


# Signatures became SM2-signed and timestamped through outside systems; earlier flows signed with a local activity.
SM2_SIGNATURES = "sm2-signatures"
# Stock moves between drafting and signing: signing runs the check again. Earlier flows signed on the first check.
CHECK_AT_SIGN = "check-at-sign"
# A review past its SLA also reaches the pharmacists on duty; earlier flows told the admins only.
OVERDUE_TO_ON_DUTY = "overdue-to-on-duty"


def prescription_workflow_id(prescription_id: str) -> str:
    return f"rx-{prescription_id}"


@workflow.defn(name="Prescription")
class PrescriptionWorkflow(PrescriptionRefundRequests):
    @workflow.init
    def __init__(self, rx: PrescriptionInput) -> None:
        self._notices = Notices()
        self._rx = rx
        self._draft: PrescriptionDraft = rx.draft
        self._state = PrescriptionState(prescription_id=rx.prescription_id, visit_id=rx.visit_id, stage=RxStage.DRAFT)
        self._review: ReviewPrescription | None = None
        self._confirmation: ConfirmPrescription | None = None
        self._lock = asyncio.Lock()

    @workflow.run
    async def run(self, rx: PrescriptionInput) -> PrescriptionState:
        # Asked before any step: a patch asked right after a local activity can be met before its marker on replay.
        self._takes_requests = workflow.patched(RX_REFUND_REQUESTS)
        await self._record()  # listed at once; the check result follows
        await self._check()
        while True:
            await workflow.wait_condition(lambda: self._state.stage is RxStage.AWAITING_REVIEW)
            if self._state.forced:
                self._notices.send(
                    self._key("to-review"),
                    "role:pharmacist",
                    "rx_to_review_forced",
                    prescription_id=rx.prescription_id,
                    flag=self._state.review_reason or "",
                    justification=self._state.forced_reason or "",
                )
            else:
                self._notices.send(
                    self._key("to-review"), "role:pharmacist", "rx_to_review", prescription_id=rx.prescription_id
                )
            try:
                await workflow.wait_condition(
                    lambda: self._review is not None, timeout=timedelta(seconds=rx.review_sla_s)
                )
            except TimeoutError:
                self._notices.send(
                    self._key("overdue"), "role:admin", "rx_review_overdue", prescription_id=rx.prescription_id
                )
                if workflow.patched(OVERDUE_TO_ON_DUTY):
                    self._notices.send(
                        self._key("overdue-on-duty"),
                        ON_DUTY_PHARMACISTS,
                        "rx_review_overdue",
                        prescription_id=rx.prescription_id,
                    )
                await workflow.wait_condition(lambda: self._review is not None)
            if self._review is not None and self._review.approve:
                break
            reason = self._review.reason if self._review is not None else ""
            self._state.returned_by = self._review.pharmacist_id if self._review is not None else None
            self._review = None
            self._state.stage = RxStage.RETURNED
            self._state.review_reason = reason
            await self._record()
            self._notices.send(
                self._key("returned"),
                f"doctor:{rx.doctor_id}",
                "rx_returned",
                prescription_id=rx.prescription_id,
                reason=reason,
            )

        self._state.stage = RxStage.AWAITING_CONFIRMATION
        await self._record()
        patient = f"patient:{rx.patient_id}"
        self._notices.send("approved", patient, "rx_approved")
        try:
            await workflow.wait_condition(
                lambda: self._confirmation is not None, timeout=timedelta(seconds=rx.pay_window_s)
            )
        except TimeoutError:
            return await self._void("患者未在规定时间内确认处方")

        priced: PricedPrescription = await db(PrescriptionActivities.price_prescription, self._draft)
        self._state.total_fen = priced.total_fen
        bill = BillInput(
            bill_id=f"{rx.prescription_id}-pay",
            kind=BillKind.PRESCRIPTION,
            ref_id=rx.prescription_id,
            patient_id=rx.patient_id,
            amount_fen=priced.total_fen,
            description="中药饮片处方",
            channel=rx.channel,
            pay_window_s=rx.pay_window_s,
        )
        self._state.bill_id = bill.bill_id
        self._state.stage = RxStage.AWAITING_PAYMENT
        await self._record()
        paid: BillState = await workflow.execute_child_workflow(
            BillWorkflow.run, bill, id=bill_workflow_id(bill.bill_id)
        )
        if paid.status is not BillStatus.PAID:
            return await self._void("处方费用未在规定时间内支付")

        self._state.stage = RxStage.FULFILLING
        await self._record()
        self._notices.send("paid", patient, "rx_paid", usage=self._draft.usage)
        self._fulfilment = await workflow.start_child_workflow(
            FulfilmentWorkflow.run,
            FulfilmentInput(
                prescription_id=rx.prescription_id,
                patient_id=rx.patient_id,
                pickup=self._state.pickup or PickupMethod.HOSPITAL,
                delivery_sla_s=rx.delivery_sla_s,
            ),
            id=fulfilment_workflow_id(rx.prescription_id),
        )
        fulfilled = await self._fulfilment_result()
        if fulfilled is None:  # withdrawn at the patient's request (workflows/rx_refund.py)
            return await self._refund_withdrawn(bill)
        if fulfilled.stage is FulfilmentStage.FAILED:
            await workflow.execute_child_workflow(
                RefundWorkflow.run,
                RefundInput(
                    refund_id=f"{bill.bill_id}-r1",
                    bill_id=bill.bill_id,
                    patient_id=rx.patient_id,
                    channel=rx.channel,
                    amount_fen=priced.total_fen,
                    reason=fulfilled.failure_reason or "药品无法调剂",
                    requested_by="system",
                ),
                id=refund_workflow_id(bill.bill_id, 1),
            )
            return await self._void(fulfilled.failure_reason or "药品无法调剂，已原路退款")
        self._state.stage = RxStage.COMPLETED
        await self._record()
        return await self._finish()

    async def _check(self) -> None:
        check: CheckResult = await call(
            PrescriptionActivities.check_prescription,
            RxCheckRequest(prescription_id=self._rx.prescription_id, patient_id=self._rx.patient_id, draft=self._draft),
        )
        self._state.check = check
        await self._record()

    async def _record(self) -> None:
        await db(PrescriptionActivities.record_prescription, self._rx, self._state, self._draft)

    def _key(self, step: str) -> str:
        """Notice keys per submission to review: each revision, and each forced re-signing of the same revision."""
        key = f"{step}-{self._state.revision}"
        return f"{key}-forced{self._state.forced_count}" if self._state.forced else key

    async def _void(self, reason: str) -> PrescriptionState:
        self._state.stage = RxStage.VOID
        self._state.void_reason = reason
        await self._record()
        self._notices.send(
            "void", f"patient:{self._rx.patient_id}", "rx_void", prescription_id=self._rx.prescription_id, reason=reason
        )
        return await self._finish()

    async def _finish(self) -> PrescriptionState:
        await self._notices.flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _signature(self, signer_id: str, reason: str | None = None) -> SignatureRecord:
        """The doctor's and the pharmacist's signatures alike: over the prescription as it stands now."""
        request = SignRequest(
            prescription_id=self._rx.prescription_id,
            revision=self._state.revision,
            patient_id=self._rx.patient_id,
            draft=self._draft,
            signer_id=signer_id,
            reason=reason,
        )
        signature: SignatureRecord
        if workflow.patched(SM2_SIGNATURES):
            # The signer and the TSA are outside systems: an activity on the integration queue.
            signature = await call(PrescriptionActivities.sign_prescription, request)
        else:
            signature = await db(PrescriptionActivities.sign_prescription, request)
        return signature

    # --- human steps ---

    @workflow.update
    async def sign(self, request: SignPrescription) -> PrescriptionState:
        async with self._lock:
            # Signing a returned prescription without revising it forces it through the pharmacist's objection.
            forced = self._state.stage is RxStage.RETURNED
            if workflow.patched(CHECK_AT_SIGN):
                await self._check()
                self._refuse_unsignable(request, forced)  # the check changed its mind, e.g. a herb ran short
            if forced:
                self._state.doctor_signatures.append(await self._signature(request.doctor_id, request.reason))
                self._state.forced = True
                self._state.forced_reason = request.reason
                self._state.forced_count += 1
                await db(
                    PrescriptionActivities.record_forced,
                    ForcedThrough(
                        prescription_id=self._rx.prescription_id,
                        revision=self._state.revision,
                        count=self._state.forced_count,
                        doctor_id=request.doctor_id,
                        justification=request.reason or "",
                        returned_by=self._state.returned_by,
                        return_reason=self._state.review_reason,
                    ),
                )
            else:
                self._state.doctor_signatures.append(await self._signature(request.doctor_id))
                if self._state.check and self._state.check.verdict is Verdict.SIGN_AGAIN:
                    # 双签: the second signature carries the doctor's written reason for the flagged items.
                    self._state.doctor_signatures.append(await self._signature(request.doctor_id, request.reason))
            self._state.submitted_at = workflow.now()
            self._state.stage = RxStage.AWAITING_REVIEW
            await self._record()
        return self._state

    @sign.validator
    def _validate_sign(self, request: SignPrescription) -> None:
        self._require_doctor(request.doctor_id)
        if self._state.stage not in (RxStage.DRAFT, RxStage.RETURNED) or self._lock.locked():
            raise ApplicationError("处方当前状态不能签名", type="RX_NOT_DRAFT")
        self._refuse_unsignable(request, forced=self._state.stage is RxStage.RETURNED)

    def _refuse_unsignable(self, request: SignPrescription, forced: bool) -> None:
        check = self._state.check
        if check is None:
            raise ApplicationError("处方尚未完成前置审方", type="RX_NOT_CHECKED", non_retryable=True)
        if check.verdict is Verdict.BLOCK:
            blocking = "；".join(f.message for f in check.findings if f.severity is Severity.BLOCK)
            raise ApplicationError(f"处方存在禁止项，请修改后再签名：{blocking}", type="RX_BLOCKED", non_retryable=True)
        if (request.reason or "").strip():
            return
        if forced:
            raise ApplicationError(
                "药师已退回该处方；如不修改而坚持原处方，请填写理由后再签名",
                type="RX_JUSTIFICATION_REQUIRED",
                non_retryable=True,
            )
        if check.verdict is Verdict.SIGN_AGAIN:
            raise ApplicationError(
                "处方存在需双签的项目，请填写理由后再次签名", type="RX_REASON_REQUIRED", non_retryable=True
            )

    @workflow.update
    async def revise(self, request: RevisePrescription) -> PrescriptionState:
        async with self._lock:
            self._draft = request.draft
            self._state.revision += 1
            self._state.doctor_signatures = []
            self._state.forced = False
            self._state.forced_reason = None
            self._state.stage = RxStage.DRAFT
            await self._check()
        return self._state

    @revise.validator
    def _validate_revise(self, request: RevisePrescription) -> None:
        self._require_doctor(request.doctor_id)
        if self._state.stage not in (RxStage.DRAFT, RxStage.RETURNED) or self._lock.locked():
            raise ApplicationError("处方当前状态不能修改", type="RX_NOT_EDITABLE")
        if self._state.stage is RxStage.RETURNED and request.draft == self._draft:
            # Resubmitting it as it was is not a revision: that is signing over the return, which needs a reason.
            raise ApplicationError(
                "处方未作修改；如坚持原处方，请填写理由后直接签名", type="RX_UNCHANGED", non_retryable=True
            )

    @workflow.update
    async def claim_review(self, request: ClaimReview) -> PrescriptionState:
        # Two claims can pass their validators in one workflow task: the first handler to run takes it.
        self._refuse_claimed(request.pharmacist_id)
        self._state.claimed_by = request.pharmacist_id
        self._state.claim_expires_at = workflow.now() + timedelta(seconds=request.ttl_s)
        async with self._lock:
            await self._record()
        return self._state

    @claim_review.validator
    def _validate_claim_review(self, request: ClaimReview) -> None:
        if self._state.stage is not RxStage.AWAITING_REVIEW or self._review is not None:
            raise ApplicationError("处方当前不在待审核状态", type="RX_NOT_AWAITING_REVIEW", non_retryable=True)
        self._refuse_claimed(request.pharmacist_id)

    def _refuse_claimed(self, pharmacist_id: str) -> None:
        expires = self._state.claim_expires_at
        if self._state.claimed_by not in (None, pharmacist_id) and expires is not None and expires > workflow.now():
            raise ApplicationError("该处方正由其他药师审核", type="RX_CLAIMED", non_retryable=True)

    @workflow.update
    async def review(self, request: ReviewPrescription) -> PrescriptionState:
        async with self._lock:
            if request.approve:
                self._state.pharmacist_signature = await self._signature(request.pharmacist_id)
            self._state.claimed_by = None
            self._state.claim_expires_at = None
            self._review = request
        await workflow.wait_condition(lambda: self._state.stage is not RxStage.AWAITING_REVIEW)
        return self._state

    @review.validator
    def _validate_review(self, request: ReviewPrescription) -> None:
        if self._state.stage is not RxStage.AWAITING_REVIEW or self._review is not None or self._lock.locked():
            raise ApplicationError("处方当前不在待审核状态", type="RX_NOT_AWAITING_REVIEW")
        self._refuse_claimed(request.pharmacist_id)
        if not request.approve and not request.reason.strip():
            raise ApplicationError("驳回处方须填写理由", type="RX_REASON_REQUIRED")

    @workflow.update
    async def confirm(self, request: ConfirmPrescription) -> PrescriptionState:
        async with self._lock:
            await db(PrescriptionActivities.save_delivery_details, self._rx.prescription_id, request)
            self._state.pickup = request.pickup
            self._confirmation = request
        # Answer with the bill to pay, once the Bill child has opened it at the channel.
        await workflow.wait_condition(lambda: self._state.pay_url is not None or self._state.stage is RxStage.VOID)
        return self._state

    @confirm.validator
    def _validate_confirm(self, request: ConfirmPrescription) -> None:
        if request.patient_id != self._rx.patient_id:
            raise ApplicationError("无权操作该处方", type="FORBIDDEN")
        if self._state.stage is not RxStage.AWAITING_CONFIRMATION or self._confirmation is not None:
            raise ApplicationError("处方当前不在待确认状态", type="RX_NOT_AWAITING_CONFIRMATION")
        if request.pickup is PickupMethod.DELIVERY and not (request.address and request.recipient and request.phone):
            raise ApplicationError("配送到家须填写收件人、电话和地址", type="ADDRESS_REQUIRED")

    def _require_doctor(self, doctor_id: str) -> None:
        if doctor_id != self._rx.doctor_id:
            raise ApplicationError("不是开具该处方的医生", type="FORBIDDEN")

    @workflow.signal(name=BILL_OPENED_SIGNAL)
    def bill_opened(self, bill: BillState) -> None:
        self._state.pay_url = bill.pay_url
        self._state.pay_deadline = bill.pay_deadline

    @workflow.query
    def state(self) -> PrescriptionState:
        return self._state

    @workflow.query
    def draft(self) -> PrescriptionDraft:
        return self._draft

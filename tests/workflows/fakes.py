"""Fake activities registered under the real names, so workflow tests run the real workflows on the real dev
server without PostgreSQL or adapters. Every call is recorded; behaviour is set per test through attributes."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.adapters.his import HisRegistration
from models.aftercare import AdverseReactionInput, AdverseReactionState
from models.billing import (
    BillInput,
    BillState,
    ChannelOrder,
    ChannelOrderStatus,
    ChannelRefund,
    RefundInput,
    RefundResult,
    RefundStatus,
)
from models.consultation import GiveOpinion, InviteConsultant
from models.duty import DutyStatus
from models.fulfilment import (
    OWN_PHARMACY,
    CourierEvent,
    DispenseCheck,
    FulfilmentInput,
    FulfilmentState,
    PharmacyOrder,
    PharmacyRoute,
    RefillInput,
    RefillPlan,
    Shipment,
)
from models.guardian import GUARDIAN_REQUIRED_MESSAGE
from models.identity import IdentityCheckInput, RealNameResult
from models.notify import Notice
from models.prescription import (
    CheckResult,
    ConfirmPrescription,
    ForcedThrough,
    PrescriptionDraft,
    PrescriptionInput,
    PrescriptionState,
    PricedLine,
    PricedPrescription,
    RxCheckRequest,
    SignRequest,
    Verdict,
)
from models.revisit import (
    EvidenceSource,
    OfflineDiagnosis,
    RevisitCheckInput,
    RevisitDecision,
    RevisitEvidenceQuery,
    UploadReview,
)
from models.schedule_change import AffectedVisit, ScheduleChangeInput
from models.signature import SignatureRecord
from models.visit import SlotMove, SlotMoveRequest, VisitInput, VisitState, WriteRecord
from tests.workflows.exam_fakes import ExamFakes
from tests.workflows.money_fakes import MoneyFakes
from workers.worker import ActivitySets


class FakeWorld(MoneyFakes, ExamFakes):
    def __init__(self) -> None:
        super().__init__()
        ExamFakes.__init__(self)
        self.calls: Counter[str] = Counter()
        self.notices: list[Notice] = []
        self.refunds: list[RefundInput] = []
        self.check = CheckResult(verdict=Verdict.PASS, findings=[])
        self.channel_paid_on_close = False
        self.pickup_code = "123456"
        self.pharmacy_refuses = False
        self.evidence: list[OfflineDiagnosis] = []
        self.visit_states: list[VisitState] = []
        self.rx_states: list[PrescriptionState] = []
        # Schedule changes: the visits `record_change` finds, and where `move_to_slot` moves a visit (or why not).
        self.affected: list[AffectedVisit] = []
        self.change_refusal: tuple[str, str] | None = None
        self.rebook_to: SlotMove | None = None
        self.rebook_refusal: tuple[str, str] | None = None
        self.moves: list[SlotMoveRequest] = []
        self.no_shows: list[VisitInput] = []
        self.his_registrations: list[VisitInput] = []
        self.forced: list[ForcedThrough] = []
        # Doctor's day: whether prescribing finds a child under six without a guardian recorded, why an invitation is
        # refused (if it is), the invitations and opinions stored; the uploads waiting for review, the reviews stored.
        self.guardian_missing = False
        self.invite_refusal: tuple[str, str] | None = None
        self.invitations: list[InviteConsultant] = []
        self.opinions: list[GiveOpinion] = []
        self.pending: list[str] = []
        self.reviews: list[UploadReview] = []
        # Pharmacist duty: what `duty_status` finds, and the business-hours openings it was asked about.
        self.duty = DutyStatus(on_duty=1)
        self.duty_asked: list[datetime] = []
        # Fulfilment: where routing sends the prescription (or why nowhere), the orders and re-checks it saw.
        self.route = PharmacyRoute(pharmacy_id=OWN_PHARMACY, name="本院药房", own=True, reason="院内取药，饮片库存充足")
        self.no_pharmacy: str | None = None
        self.orders: list[str | None] = []
        self.rechecks: list[DispenseCheck] = []
        # Aftercare: the refill reminder's delay after sign-off (None: no reminder), whether it was renewed already,
        # and every state the adverse reaction flows recorded.
        self.refill_after_s: float | None = 3600.0
        self.refill_skip: str | None = None
        self.refills: list[RefillInput] = []
        self.reactions: list[AdverseReactionState] = []

    def _seen(self) -> None:
        self.calls[activity.info().activity_type] += 1

    # --- visits ---
    @activity.defn(name="record_visit")
    async def record_visit(self, visit: VisitInput, state: VisitState) -> None:
        self._seen()
        self.visit_states.append(state)

    @activity.defn(name="confirm_slot")
    async def confirm_slot(self, visit: VisitInput) -> str:
        self._seen()
        return "测试医生"

    @activity.defn(name="release_slot")
    async def release_slot(self, visit: VisitInput) -> None:
        self._seen()

    @activity.defn(name="move_to_slot")
    async def move_to_slot(self, move: SlotMoveRequest) -> SlotMove:
        self._seen()
        if self.rebook_refusal is not None:
            code, message = self.rebook_refusal
            self.rebook_refusal = None  # refused once; the patient's next choice goes through
            raise ApplicationError(message, type=code, non_retryable=True)
        assert self.rebook_to is not None, "set world.rebook_to"
        self.moves.append(move)
        return self.rebook_to

    @activity.defn(name="record_no_show")
    async def record_no_show(self, visit: VisitInput) -> None:
        self._seen()
        self.no_shows.append(visit)

    @activity.defn(name="register_with_his")
    async def register_with_his(self, visit: VisitInput, sequence: int) -> HisRegistration:
        self._seen()
        self.his_registrations.append(visit)
        return HisRegistration(his_registration_no=f"HIS-{visit.visit_id}-{sequence}", queue_no=7 + sequence)

    @activity.defn(name="cancel_his_registration")
    async def cancel_his_registration(self, visit_id: str, his_registration_no: str) -> None:
        self._seen()

    @activity.defn(name="save_medical_record")
    async def save_medical_record(self, visit: VisitInput, write: WriteRecord) -> str:
        self._seen()
        return "digest"

    @activity.defn(name="sign_medical_record")
    async def sign_medical_record(self, visit: VisitInput, doctor_id: str) -> SignatureRecord:
        self._seen()
        return SignatureRecord(signer_id=doctor_id, digest="record-digest", signed_at=datetime.now(UTC))

    # --- schedule changes ---
    @activity.defn(name="record_change")
    async def record_change(self, change: ScheduleChangeInput) -> list[AffectedVisit]:
        self._seen()
        if self.change_refusal is not None:
            code, message = self.change_refusal
            raise ApplicationError(message, type=code, non_retryable=True)
        return self.affected

    @activity.defn(name="finish_change")
    async def finish_change(self, change_id: str) -> None:
        self._seen()

    # --- billing ---
    @activity.defn(name="record_bill")
    async def record_bill(self, bill: BillInput, state: BillState) -> None:
        self._seen()

    @activity.defn(name="create_channel_order")
    async def create_channel_order(self, bill: BillInput) -> ChannelOrder:
        self._seen()
        return ChannelOrder(
            out_trade_no=bill.bill_id,
            amount_fen=bill.amount_fen,
            status=ChannelOrderStatus.NOTPAY,
            pay_url=f"https://pay.example/{bill.bill_id}",
        )

    @activity.defn(name="close_channel_order")
    async def close_channel_order(self, bill_id: str) -> ChannelOrder:
        self._seen()
        status = ChannelOrderStatus.SUCCESS if self.channel_paid_on_close else ChannelOrderStatus.CLOSED
        return ChannelOrder(out_trade_no=bill_id, amount_fen=0, status=status, transaction_id="T-late")

    @activity.defn(name="reserve_refund")
    async def reserve_refund(self, refund: RefundInput) -> None:
        self._seen()
        self.refunds.append(refund)

    @activity.defn(name="request_channel_refund")
    async def request_channel_refund(self, refund: RefundInput) -> ChannelRefund:
        self._seen()
        return ChannelRefund(
            out_refund_no=refund.refund_id,
            out_trade_no=refund.bill_id,
            amount_fen=refund.amount_fen,
            status=RefundStatus.SUCCEEDED,
            refund_id=f"R-{refund.refund_id}",
        )

    @activity.defn(name="query_channel_refund")
    async def query_channel_refund(self, refund_id: str) -> ChannelRefund:
        self._seen()
        raise ApplicationError("not expected in these tests", non_retryable=True)

    @activity.defn(name="finish_refund")
    async def finish_refund(self, result: RefundResult) -> None:
        self._seen()

    # --- notices ---
    @activity.defn(name="send_notice")
    async def send_notice(self, notice: Notice) -> int:
        self._seen()
        self.notices.append(notice)
        return 1

    # --- prescriptions ---
    @activity.defn(name="check_prescription")
    async def check_prescription(self, request: RxCheckRequest) -> CheckResult:
        self._seen()
        return self.check

    @activity.defn(name="price_prescription")
    async def price_prescription(self, draft: PrescriptionDraft) -> PricedPrescription:
        self._seen()
        lines = [PricedLine(herb=i.herb, grams_total=i.dose_g * draft.doses, amount_fen=100) for i in draft.items]
        return PricedPrescription(total_fen=100 * len(lines), lines=lines)

    @activity.defn(name="sign_prescription")
    async def sign_prescription(self, request: SignRequest) -> SignatureRecord:
        self._seen()
        return SignatureRecord(
            signer_id=request.signer_id,
            digest=f"d{request.revision}",
            signed_at=datetime.now(UTC),
            reason=request.reason,
        )

    @activity.defn(name="record_prescription")
    async def record_prescription(
        self, prescription: PrescriptionInput, state: PrescriptionState, draft: PrescriptionDraft
    ) -> None:
        self._seen()
        self.rx_states.append(state)

    @activity.defn(name="save_delivery_details")
    async def save_delivery_details(self, prescription_id: str, confirmation: ConfirmPrescription) -> None:
        self._seen()

    @activity.defn(name="record_forced")
    async def record_forced(self, forced: ForcedThrough) -> None:
        self._seen()
        self.forced.append(forced)

    # --- pharmacist duty ---
    @activity.defn(name="duty_status")
    async def duty_status(self, opened_at: datetime) -> DutyStatus:
        self._seen()
        self.duty_asked.append(opened_at)
        return self.duty

    # --- fulfilment ---
    @activity.defn(name="route_prescription")
    async def route_prescription(self, prescription_id: str) -> PharmacyRoute:
        self._seen()
        if self.no_pharmacy is not None:
            raise ApplicationError(self.no_pharmacy, type="NO_PHARMACY", non_retryable=True)
        return self.route

    @activity.defn(name="submit_to_pharmacy")
    async def submit_to_pharmacy(self, prescription_id: str, pharmacy_id: str | None = None) -> PharmacyOrder:
        self._seen()
        self.orders.append(pharmacy_id)
        if self.pharmacy_refuses:
            raise ApplicationError("甘草库存不足", type="STOCK_SHORT", non_retryable=True)
        return PharmacyOrder(order_no=f"PH-{prescription_id}", pharmacy=pharmacy_id or "fake")

    @activity.defn(name="cancel_pharmacy_order")
    async def cancel_pharmacy_order(self, prescription_id: str, order_no: str, pharmacy_id: str | None = None) -> None:
        self._seen()

    @activity.defn(name="sign_recheck")
    async def sign_recheck(self, prescription_id: str, check: DispenseCheck) -> SignatureRecord:
        self._seen()
        self.rechecks.append(check)
        return SignatureRecord(
            signer_id=check.pharmacist_id,
            digest=f"recheck-{prescription_id}",
            signed_at=datetime.now(UTC),
            reason=check.note,
        )

    @activity.defn(name="book_courier")
    async def book_courier(self, prescription_id: str) -> Shipment:
        self._seen()
        return Shipment(waybill_no=f"WB-{prescription_id}", carrier="fake")

    @activity.defn(name="track_shipment")
    async def track_shipment(self, waybill_no: str) -> list[CourierEvent]:
        self._seen()
        return []

    @activity.defn(name="issue_pickup_code")
    async def issue_pickup_code(self, prescription_id: str) -> str:
        self._seen()
        return self.pickup_code

    @activity.defn(name="verify_pickup_code")
    async def verify_pickup_code(self, prescription_id: str, code: str) -> bool:
        self._seen()
        return code == self.pickup_code

    @activity.defn(name="record_fulfilment")
    async def record_fulfilment(self, fulfilment: FulfilmentInput, state: FulfilmentState) -> None:
        self._seen()

    # --- aftercare ---
    @activity.defn(name="plan_refill")
    async def plan_refill(self, refill: RefillInput) -> RefillPlan:
        self._seen()
        self.refills.append(refill)
        after = self.refill_after_s
        return RefillPlan(
            remind_at=refill.signed_at + timedelta(seconds=after) if after is not None else None,
            course_ends_at=refill.signed_at + timedelta(seconds=(after or 0) * 2),
            doctor_name="李医生",
            disease_name="胃痞病",
        )

    @activity.defn(name="refill_skipped")
    async def refill_skipped(self, prescription_id: str) -> str | None:
        self._seen()
        return self.refill_skip

    @activity.defn(name="record_adverse_reaction")
    async def record_adverse_reaction(self, report: AdverseReactionInput, state: AdverseReactionState) -> None:
        self._seen()
        self.reactions.append(state)

    # --- revisit and identity ---
    @activity.defn(name="find_revisit_evidence")
    async def find_revisit_evidence(self, query: RevisitEvidenceQuery) -> list[OfflineDiagnosis]:
        self._seen()
        return self.evidence

    @activity.defn(name="record_revisit_decision")
    async def record_revisit_decision(self, decision: RevisitDecision) -> None:
        self._seen()

    @activity.defn(name="verify_identity")
    async def verify_identity(self, check: IdentityCheckInput) -> RealNameResult:
        self._seen()
        return RealNameResult(matched=True)

    @activity.defn(name="record_identity_result")
    async def record_identity_result(self, check: IdentityCheckInput, result: RealNameResult) -> None:
        self._seen()

    # --- doctor's day: guardians, consultations, reviewed uploads ---
    @activity.defn(name="require_guardian")
    async def require_guardian(self, visit: VisitInput) -> None:
        self._seen()
        if self.guardian_missing:
            raise ApplicationError(GUARDIAN_REQUIRED_MESSAGE, type="GUARDIAN_REQUIRED", non_retryable=True)

    @activity.defn(name="record_invitation")
    async def record_invitation(self, visit: VisitInput, invite: InviteConsultant) -> None:
        self._seen()
        if self.invite_refusal is not None:
            code, message = self.invite_refusal
            raise ApplicationError(message, type=code, non_retryable=True)
        self.invitations.append(invite)

    @activity.defn(name="sign_opinion")
    async def sign_opinion(self, visit: VisitInput, opinion: GiveOpinion) -> SignatureRecord:
        self._seen()
        self.opinions.append(opinion)
        return SignatureRecord(signer_id=opinion.doctor_id, digest="opinion-digest", signed_at=datetime.now(UTC))

    @activity.defn(name="pending_uploads")
    async def pending_uploads(self, check: RevisitCheckInput) -> list[str]:
        self._seen()
        return list(self.pending)

    @activity.defn(name="review_upload")
    async def review_upload(self, check: RevisitCheckInput, review: UploadReview) -> OfflineDiagnosis | None:
        self._seen()
        self.reviews.append(review)
        if not review.approve:
            return None
        return OfflineDiagnosis(
            encounter_id=f"upload:{review.upload_id}",
            disease_code=check.disease_code,
            disease_name="胃痞病",
            diagnosed_at=datetime.now(UTC) - timedelta(days=20),
            department="",
            doctor_name="",
            source=EvidenceSource.UPLOAD,
        )

    def activity_sets(self) -> ActivitySets:
        local = [
            self.record_visit, self.confirm_slot, self.release_slot, self.save_medical_record, self.record_bill,
            self.reserve_refund, self.finish_refund, self.price_prescription, self.sign_prescription,
            self.record_prescription, self.save_delivery_details, self.issue_pickup_code, self.verify_pickup_code,
            self.record_fulfilment, self.record_revisit_decision, self.record_identity_result, self.move_to_slot,
            self.record_no_show, self.record_change, self.finish_change, self.record_forced, self.duty_status,
            self.plan_refill, self.refill_skipped, self.record_adverse_reaction,
            self.require_guardian, self.record_invitation, self.pending_uploads, self.review_upload,
        ]  # fmt: skip
        integration = [
            self.register_with_his, self.cancel_his_registration, self.create_channel_order, self.close_channel_order,
            self.request_channel_refund, self.query_channel_refund, self.send_notice, self.check_prescription,
            self.submit_to_pharmacy, self.cancel_pharmacy_order, self.book_courier, self.track_shipment,
            self.find_revisit_evidence, self.verify_identity, self.sign_prescription, self.sign_medical_record,
            self.route_prescription, self.sign_recheck,
            self.sign_opinion,
        ]  # fmt: skip
        money_local, money_integration = self.money_activities()
        return ActivitySets(
            local=local + money_local + self.exam_activities(), integration=integration + money_integration
        )

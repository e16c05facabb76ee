"""Fake activities registered under the real names, so workflow tests run the real workflows on the real dev
server without PostgreSQL or adapters. Every call is recorded; behaviour is set per test through attributes."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.adapters.his import HisRegistration
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
from models.duty import DutyStatus
from models.fulfilment import (
    CourierEvent,
    FulfilmentInput,
    FulfilmentState,
    PharmacyOrder,
    Shipment,
)
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
from models.revisit import OfflineDiagnosis, RevisitDecision, RevisitEvidenceQuery
from models.schedule_change import AffectedVisit, ScheduleChangeInput
from models.signature import SignatureRecord
from models.visit import SlotMove, SlotMoveRequest, VisitInput, VisitState, WriteRecord
from workers.worker import ActivitySets


class FakeWorld:
    def __init__(self) -> None:
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
        # Pharmacist duty: what `duty_status` finds, and the business-hours openings it was asked about.
        self.duty = DutyStatus(on_duty=1)
        self.duty_asked: list[datetime] = []

    def _seen(self) -> None:
        self.calls[activity.info().activity_type] += 1

    # --- visits ---
    @activity.defn(name="record_visit")
    async def record_visit(self, visit: VisitInput, state: VisitState) -> None:
        self._seen()
        self.visit_states.append(state)

    @activity.defn(name="confirm_slot")
    async def confirm_slot(self, visit: VisitInput) -> None:
        self._seen()

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
    @activity.defn(name="submit_to_pharmacy")
    async def submit_to_pharmacy(self, prescription_id: str) -> PharmacyOrder:
        self._seen()
        if self.pharmacy_refuses:
            raise ApplicationError("甘草库存不足", type="STOCK_SHORT", non_retryable=True)
        return PharmacyOrder(order_no=f"PH-{prescription_id}", pharmacy="fake")

    @activity.defn(name="cancel_pharmacy_order")
    async def cancel_pharmacy_order(self, prescription_id: str, order_no: str) -> None:
        self._seen()

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

    def activity_sets(self) -> ActivitySets:
        local = [
            self.record_visit, self.confirm_slot, self.release_slot, self.save_medical_record, self.record_bill,
            self.reserve_refund, self.finish_refund, self.price_prescription, self.sign_prescription,
            self.record_prescription, self.save_delivery_details, self.issue_pickup_code, self.verify_pickup_code,
            self.record_fulfilment, self.record_revisit_decision, self.record_identity_result, self.move_to_slot,
            self.record_no_show, self.record_change, self.finish_change, self.record_forced, self.duty_status,
        ]  # fmt: skip
        integration = [
            self.register_with_his, self.cancel_his_registration, self.create_channel_order, self.close_channel_order,
            self.request_channel_refund, self.query_channel_refund, self.send_notice, self.check_prescription,
            self.submit_to_pharmacy, self.cancel_pharmacy_order, self.book_courier, self.track_shipment,
            self.find_revisit_evidence, self.verify_identity, self.sign_prescription, self.sign_medical_record,
        ]  # fmt: skip
        return ActivitySets(local=local, integration=integration)

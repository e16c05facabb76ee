"""The worker process: workflows and database steps on the main queue, outside-system calls on their own queue.

Run with `python -m workers.worker` (or `qihuang worker`). Settings come from the environment.
"""

from __future__ import annotations

import asyncio
import compileall
import gc
import signal
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

import workflows
from activities.adapters.registry import Adapters, load_adapters
from activities.aftercare import AftercareActivities
from activities.billing import BillingActivities
from activities.catalog import CatalogActivities
from activities.complaints import ComplaintActivities
from activities.consultations import ConsultationActivities
from activities.duty import DutyActivities
from activities.evaluations import EvaluationActivities
from activities.exams import ExamActivities
from activities.fulfilment import FulfilmentActivities
from activities.housekeeping import HousekeepingActivities
from activities.identity import IdentityActivities
from activities.institutions import InstitutionActivities
from activities.insurance_book import standing_groups
from activities.insurance_pay import InsurancePayActivities, RecordedSettlements
from activities.invoices import InvoiceActivities
from activities.ledger import LedgerActivities
from activities.notices import NoticeActivities
from activities.onboarding import OnboardingActivities
from activities.pharmacy_routing import PharmacyNetwork
from activities.prescriptions import PrescriptionActivities
from activities.reconciliation import ReconciliationActivities, statement_channels
from activities.records import RecordActivities
from activities.refund_requests import RefundRequestActivities
from activities.revisit import RevisitActivities
from activities.rules.engine import default_engine
from activities.schedule_changes import ScheduleChangeActivities
from activities.signatures import Signatures
from activities.supervision import SupervisionActivities
from activities.visits import VisitActivities
from core.crypto.sm import FieldCipher
from core.db import make_engine, make_sessionmaker
from core.ledger.keys import load_signing_key
from core.ledger.service import EvidenceLedger
from core.logging import configure_logging
from core.priority import lower_priority
from core.reconciliation import ReconciliationPolicy
from core.settings import Settings, get_settings
from core.temporal import connect
from workers.interceptors import LogContextInterceptor
from workers.schedules import apply_schedules
from workflows.adverse_reaction import AdverseReactionWorkflow
from workflows.bill import BillWorkflow
from workflows.catalog import CatalogChangeWorkflow
from workflows.complaint import ComplaintWorkflow
from workflows.duty import PharmacistDutyCheckWorkflow
from workflows.evaluation import EvaluationFollowUpWorkflow
from workflows.exam import ExamOrderWorkflow
from workflows.fulfilment import FulfilmentWorkflow
from workflows.gateway_alert import GatewayAlertWorkflow
from workflows.housekeeping import SecurityHousekeepingWorkflow
from workflows.identity import IdentityVerificationWorkflow
from workflows.institution import InstitutionRegistrationWorkflow, InstitutionReverificationWorkflow
from workflows.invoice import InvoiceWorkflow
from workflows.ledger import LedgerTreeHeadWorkflow
from workflows.onboarding import OnboardingWorkflow
from workflows.prescription import PrescriptionWorkflow
from workflows.reconciliation import DailyReconciliationWorkflow, ReconciliationWorkflow
from workflows.refill import RefillReminderWorkflow
from workflows.refund import RefundWorkflow
from workflows.revisit import RevisitCheckWorkflow
from workflows.schedule_change import ScheduleChangeWorkflow
from workflows.supervision import DailySupervisionUploadWorkflow, SupervisionUploadWorkflow
from workflows.visit import VisitWorkflow

WORKFLOWS: Sequence[type] = (
    AdverseReactionWorkflow,
    BillWorkflow,
    CatalogChangeWorkflow,
    ComplaintWorkflow,
    DailyReconciliationWorkflow,
    DailySupervisionUploadWorkflow,
    EvaluationFollowUpWorkflow,
    ExamOrderWorkflow,
    FulfilmentWorkflow,
    GatewayAlertWorkflow,
    IdentityVerificationWorkflow,
    InstitutionRegistrationWorkflow,
    InstitutionReverificationWorkflow,
    InvoiceWorkflow,
    LedgerTreeHeadWorkflow,
    OnboardingWorkflow,
    PharmacistDutyCheckWorkflow,
    PrescriptionWorkflow,
    ReconciliationWorkflow,
    RefillReminderWorkflow,
    RefundWorkflow,
    RevisitCheckWorkflow,
    ScheduleChangeWorkflow,
    SecurityHousekeepingWorkflow,
    SupervisionUploadWorkflow,
    VisitWorkflow,
)

log = structlog.get_logger()


@dataclass
class ActivitySets:
    """Activities split by where they run: `local` are database steps, `integration` call outside systems."""

    local: list[Any]
    integration: list[Any]


def build_activities(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, adapters: Adapters
) -> ActivitySets:
    cipher = FieldCipher(settings.pii_key, settings.blind_index_key)
    billing = BillingActivities(sessions, adapters.payment, merchants=adapters.merchants, settings=settings)
    insurance_pay = InsurancePayActivities(sessions, cipher, adapters.insurance)
    invoices = InvoiceActivities(sessions, cipher, adapters.invoice)
    refund_requests = RefundRequestActivities(sessions)
    complaints = ComplaintActivities(sessions)
    exams = ExamActivities(sessions)
    evaluations = EvaluationActivities(sessions)
    catalog = CatalogActivities(sessions)
    visits = VisitActivities(sessions, cipher, adapters.his)
    ledger = EvidenceLedger(sessions)
    evidence = LedgerActivities(ledger, load_signing_key(settings), adapters.tsa, adapters.ledger_anchor, sessions)
    signatures = Signatures(adapters.signer, adapters.tsa, ledger)
    prescriptions = PrescriptionActivities(sessions, cipher, adapters.pharmacy, default_engine(), signatures)
    records = RecordActivities(sessions, signatures)
    consultations = ConsultationActivities(sessions, signatures)
    pharmacies = PharmacyNetwork(sessions, settings, adapters.pharmacy)
    fulfilment = FulfilmentActivities(sessions, cipher, pharmacies, adapters.courier, signatures)
    aftercare = AftercareActivities(sessions, settings.refill_reminder_lead_s)
    revisit = RevisitActivities(
        sessions,
        cipher,
        adapters.his,
        adapters.emr,
        settings.revisit_sources,
        regional=adapters.regional,
        ledger=ledger,
        org_code=settings.hospital_org_code,
    )
    identity = IdentityActivities(sessions, cipher, adapters.realname, adapters.liveness)
    onboarding = OnboardingActivities(sessions, cipher, adapters.practitioner, ledger)
    institutions = InstitutionActivities(sessions, adapters.supervision)
    supervision = SupervisionActivities(sessions, cipher, adapters.supervision)
    housekeeping = HousekeepingActivities(sessions)
    notices = NoticeActivities(
        sessions,
        cipher,
        adapters.notifier,
        settings.notify_channels,
        links_base=settings.links_base,
        mailer=adapters.mailer,
        email_templates=settings.notify_email_templates,
    )
    schedule_changes = ScheduleChangeActivities(sessions)
    duty = DutyActivities(sessions)
    reconciliation = ReconciliationActivities(
        sessions,
        statement_channels(adapters.payment, adapters.merchants.campuses()),
        adapters.insurance,
        RecordedSettlements(sessions),
        standing_groups(settings),
        ReconciliationPolicy.of(settings),
    )
    return ActivitySets(
        local=[
            billing.record_bill,
            billing.reserve_refund,
            billing.finish_refund,
            billing.claim_refund,
            billing.open_special_refund,
            billing.record_negotiation,
            insurance_pay.insurance_presented,
            insurance_pay.insurance_path,
            refund_requests.dispatch_status,
            refund_requests.withdraw_fulfilment,
            complaints.record_escalation,
            complaints.record_response,
            evaluations.record_handling,
            catalog.publish_change,
            catalog.reject_change,
            exams.record_exam_order,
            exams.book_exam_day,
            exams.release_exam_days,
            visits.record_visit,
            visits.confirm_slot,
            visits.release_slot,
            visits.move_to_slot,
            visits.record_no_show,
            visits.require_guardian,
            consultations.record_invitation,
            records.save_medical_record,
            evidence.append_evidence,
            prescriptions.price_prescription,
            prescriptions.sign_prescription,
            prescriptions.record_prescription,
            prescriptions.save_delivery_details,
            prescriptions.record_forced,
            duty.duty_status,
            fulfilment.issue_pickup_code,
            fulfilment.verify_pickup_code,
            fulfilment.record_fulfilment,
            aftercare.plan_refill,
            aftercare.refill_skipped,
            aftercare.record_adverse_reaction,
            revisit.record_revisit_decision,
            revisit.pending_uploads,
            revisit.review_upload,
            identity.record_identity_result,
            identity.record_liveness,
            onboarding.application_facts,
            onboarding.put_documents_on_record,
            onboarding.record_checks,
            onboarding.finish_onboarding,
            institutions.record_institution,
            institutions.approved_institutions,
            institutions.record_reverification,
            housekeeping.purge_login_throttle,
            schedule_changes.record_change,
            schedule_changes.finish_change,
            reconciliation.open_run,
            reconciliation.match_statement,
            reconciliation.record_resolution,
            reconciliation.finish_run,
            reconciliation.bad_debt_exposure,
        ],
        integration=[
            billing.create_channel_order,
            billing.close_channel_order,
            billing.request_channel_refund,
            billing.query_channel_refund,
            insurance_pay.settle_bill_insurance,
            insurance_pay.check_mobile_settlement,
            insurance_pay.reverse_unknown_settlement,
            insurance_pay.release_bill_insurance,
            invoices.issue_invoice,
            invoices.reverse_invoice,
            visits.register_with_his,
            visits.cancel_his_registration,
            prescriptions.check_prescription,
            # Also a local activity: flows started before signatures were SM2-signed and timestamped run it there.
            prescriptions.sign_prescription,
            records.sign_medical_record,
            consultations.sign_opinion,
            evidence.sign_tree_head,
            evidence.anchor_tree_head,
            fulfilment.submit_to_pharmacy,
            fulfilment.cancel_pharmacy_order,
            fulfilment.book_courier,
            fulfilment.track_shipment,
            fulfilment.route_prescription,
            fulfilment.sign_recheck,
            revisit.find_revisit_evidence,
            identity.verify_identity,
            identity.check_liveness,
            onboarding.lookup_practitioner,
            institutions.submit_institution,
            institutions.registration_status,
            institutions.verify_institution,
            institutions.reverify_institution,
            supervision.upload_batch,
            notices.send_notice,
            reconciliation.download_statement,
            reconciliation.check_insurance,
        ],
    )


def compile_workflows() -> None:
    """Write the workflow modules' bytecode. The sandbox imports them afresh for every workflow run it starts; where
    bytecode is not cached (PYTHONDONTWRITEBYTECODE, a read-only image) each of those imports would compile the
    source again, which was a third of the worker's CPU in a booking rush."""
    compileall.compile_dir(Path(workflows.__file__).parent, quiet=1)


def build_workers(client: Client, task_queue: str, activities: ActivitySets, max_concurrent: int = 50) -> list[Worker]:
    """Two workers: the main queue (workflows + their local DB steps) and `<queue>-integrations`."""
    compile_workflows()
    interceptors = [LogContextInterceptor()]
    return [
        Worker(
            client,
            task_queue=task_queue,
            workflows=list(WORKFLOWS),
            activities=activities.local,
            interceptors=interceptors,
            max_concurrent_activities=max_concurrent,
        ),
        Worker(
            client,
            task_queue=f"{task_queue}-integrations",
            activities=activities.integration,
            interceptors=interceptors,
            max_concurrent_activities=max_concurrent,
        ),
    ]


async def serve(settings: Settings) -> None:
    settings.check()
    if settings.worker_nice:
        lower_priority(settings.worker_nice)
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    client = await connect(settings)
    await apply_schedules(client, settings)
    activities = build_activities(sessions, settings, load_adapters(sessions, settings))
    workers = build_workers(client, settings.task_queue, activities, settings.max_concurrent_activities)
    # What is alive now lives as long as the process: kept out of the collector's full passes (see api.main).
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        log.info("worker started", task_queue=settings.task_queue, temporal=settings.temporal_address)
        await stop.wait()
        log.info("worker stopping")
    await engine.dispose()


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()

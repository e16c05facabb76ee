"""SQLModel tables. Never imported by workflows.

Importing this package registers every table on `SQLModel.metadata` (Alembic reads it from here).
"""

from models.tables.aftercare import AdverseReactionReport
from models.tables.audit import AuditEvent
from models.tables.billing import Bill, Refund, RefundNegotiation
from models.tables.catalogue import CatalogChange, Department, Disease, Herb
from models.tables.clinical import MedicalRecord, MedicalRecordAddendum, Prescription, Visit
from models.tables.conduct import BookingBlock, NoShow
from models.tables.consult import ConsultCall, ConsultMedia, ConsultMessage, ConsultRead
from models.tables.consultation import VisitConsultant
from models.tables.duty import PharmacistDuty
from models.tables.exams import ExamCapacity, ExamCatalogueEntry, ExamItem, ExamOrder
from models.tables.feedback import Complaint, Evaluation
from models.tables.fulfilment import Fulfilment
from models.tables.guardian import VisitGuardian
from models.tables.identity import AccessToken, Consent, Doctor, LivenessCheck, Patient, Pharmacist, User
from models.tables.institution import Institution, InstitutionReverification
from models.tables.insurance import InsuranceCredential, InsuranceSettlement
from models.tables.integration import IntegrationApp, IntegrationCounter, IntegrationNonce
from models.tables.ledger import LedgerAnchor, LedgerEntry, LedgerNode, LedgerTreeHead
from models.tables.pharmacies import PartnerPharmacy, PharmacyStaff, SandboxPartnerStock
from models.tables.platform import IdempotencyRecord, Notification, SentEmail
from models.tables.reconciliation import ChannelStatement, ChannelStatementLine, ReconciliationItem, ReconciliationRun
from models.tables.revisit import RevisitEligibility, RevisitUpload
from models.tables.sandbox import SandboxCall, SandboxHisDiagnosis, SandboxPayOrder, SandboxRefund, SandboxShipment
from models.tables.scheduling import Schedule, ScheduleChange, Slot
from models.tables.security import (
    LoginThrottle,
    MfaChallenge,
    MfaFactor,
    PermissionEntry,
    RolePermission,
    UserPermission,
)
from models.tables.staff import StaffApplication, StaffDocument
from models.tables.supervision import SupervisionRecordState

__all__ = [
    "AccessToken",
    "AdverseReactionReport",
    "AuditEvent",
    "Bill",
    "BookingBlock",
    "CatalogChange",
    "ChannelStatement",
    "ChannelStatementLine",
    "Complaint",
    "Consent",
    "ConsultCall",
    "ConsultMedia",
    "ConsultMessage",
    "ConsultRead",
    "Department",
    "Disease",
    "Doctor",
    "Evaluation",
    "ExamCapacity",
    "ExamCatalogueEntry",
    "ExamItem",
    "ExamOrder",
    "Fulfilment",
    "Herb",
    "IdempotencyRecord",
    "Institution",
    "InstitutionReverification",
    "InsuranceCredential",
    "InsuranceSettlement",
    "IntegrationApp",
    "IntegrationCounter",
    "IntegrationNonce",
    "LedgerAnchor",
    "LedgerEntry",
    "LedgerNode",
    "LedgerTreeHead",
    "LivenessCheck",
    "LoginThrottle",
    "MedicalRecord",
    "MedicalRecordAddendum",
    "MfaChallenge",
    "MfaFactor",
    "NoShow",
    "Notification",
    "PartnerPharmacy",
    "Patient",
    "PermissionEntry",
    "Pharmacist",
    "PharmacistDuty",
    "PharmacyStaff",
    "Prescription",
    "ReconciliationItem",
    "ReconciliationRun",
    "Refund",
    "RefundNegotiation",
    "RevisitEligibility",
    "RevisitUpload",
    "RolePermission",
    "SandboxCall",
    "SandboxHisDiagnosis",
    "SandboxPartnerStock",
    "SandboxPayOrder",
    "SandboxRefund",
    "SandboxShipment",
    "Schedule",
    "ScheduleChange",
    "SentEmail",
    "Slot",
    "StaffApplication",
    "StaffDocument",
    "SupervisionRecordState",
    "User",
    "UserPermission",
    "Visit",
    "VisitConsultant",
    "VisitGuardian",
]

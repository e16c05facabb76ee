"""SQLModel tables. Never imported by workflows.

Importing this package registers every table on `SQLModel.metadata` (Alembic reads it from here).
"""

from models.tables.audit import AuditEvent
from models.tables.billing import Bill, Refund
from models.tables.catalogue import Department, Disease, Herb
from models.tables.clinical import MedicalRecord, MedicalRecordAddendum, Prescription, Visit
from models.tables.conduct import BookingBlock, NoShow
from models.tables.consult import ConsultCall, ConsultMedia, ConsultMessage, ConsultRead
from models.tables.duty import PharmacistDuty
from models.tables.fulfilment import Fulfilment
from models.tables.identity import AccessToken, Consent, Doctor, Patient, Pharmacist, User
from models.tables.integration import IntegrationApp, IntegrationCounter, IntegrationNonce
from models.tables.ledger import LedgerEntry, LedgerNode, LedgerTreeHead
from models.tables.platform import IdempotencyRecord, Notification
from models.tables.reconciliation import ChannelStatement, ChannelStatementLine, ReconciliationItem, ReconciliationRun
from models.tables.revisit import RevisitEligibility
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

__all__ = [
    "AccessToken",
    "AuditEvent",
    "Bill",
    "BookingBlock",
    "ChannelStatement",
    "ChannelStatementLine",
    "Consent",
    "ConsultCall",
    "ConsultMedia",
    "ConsultMessage",
    "ConsultRead",
    "Department",
    "Disease",
    "Doctor",
    "Fulfilment",
    "Herb",
    "IdempotencyRecord",
    "IntegrationApp",
    "IntegrationCounter",
    "IntegrationNonce",
    "LedgerEntry",
    "LedgerNode",
    "LedgerTreeHead",
    "LoginThrottle",
    "MedicalRecord",
    "MedicalRecordAddendum",
    "MfaChallenge",
    "MfaFactor",
    "NoShow",
    "Notification",
    "Patient",
    "PermissionEntry",
    "Pharmacist",
    "PharmacistDuty",
    "Prescription",
    "ReconciliationItem",
    "ReconciliationRun",
    "Refund",
    "RevisitEligibility",
    "RolePermission",
    "SandboxCall",
    "SandboxHisDiagnosis",
    "SandboxPayOrder",
    "SandboxRefund",
    "SandboxShipment",
    "Schedule",
    "ScheduleChange",
    "Slot",
    "User",
    "UserPermission",
    "Visit",
]

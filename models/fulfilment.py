"""Dispensing, delivery and sign-off (8.3.4, 8.3.7–8.3.9)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from models.prescription import PickupMethod, SignRequest
from models.signature import SignatureRecord

# The hospital's own pharmacy, among the pharmacies a prescription may be routed to (partner pharmacies have the ids
# admins give them).
OWN_PHARMACY = "hospital"
OWN_PHARMACY_NAME = "本院药房"


class FulfilmentStage(StrEnum):
    AT_PHARMACY = "at_pharmacy"
    DISPENSED = "dispensed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    SIGNED = "signed"
    FAILED = "failed"


class FulfilmentInput(BaseModel):
    prescription_id: str
    patient_id: str
    pickup: PickupMethod
    delivery_sla_s: int


class PharmacyOrder(BaseModel):
    order_no: str
    pharmacy: str


class StockShortage(BaseModel):
    herb: str
    needed_g: float
    available_g: float


class CourierStatus(StrEnum):
    CREATED = "created"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    FAILED = "failed"


class CourierEvent(BaseModel):
    waybill_no: str
    status: CourierStatus
    occurred_at: datetime
    note: str = ""


class Shipment(BaseModel):
    waybill_no: str
    carrier: str


class PharmacyRoute(BaseModel):
    """The pharmacy a paid prescription is routed to and why (8.3.4.1, 8.3.7.1); shown to the patient and staff."""

    pharmacy_id: str
    name: str
    own: bool
    reason: str
    # The pharmacies tried before it, each with why it was passed over ("本院药房：茯苓库存不足").
    passed_over: list[str] = []


class DispenseCheck(BaseModel):
    """The dispensing pharmacy's pharmacist re-checks the prescription (8.3.7.2) and records the dispensing."""

    pharmacist_id: str
    approve: bool
    note: str = Field(default="", max_length=500)
    # The pharmacy the pharmacist works at (the API looks it up): only the routed pharmacy's pharmacists re-check.
    pharmacy_id: str = OWN_PHARMACY


class RecheckSignRequest(SignRequest):
    """Activity input and signed content of a re-check: the prescription as paid, the decision and the pharmacy.
    `reason` carries the pharmacist's note."""

    pharmacy_id: str
    approve: bool


class Recheck(BaseModel):
    """The dispensing pharmacist's signed re-check decision."""

    pharmacist_id: str
    pharmacy_id: str
    approve: bool
    note: str = ""
    signature: SignatureRecord


class SignOff(BaseModel):
    actor_id: str
    pickup_code: str = Field(pattern=r"^\d{6}$")


class UnlockSignOff(BaseModel):
    """A pharmacist re-opens sign-off after too many wrong codes, having checked the recipient's identity in person."""

    pharmacist_id: str
    reason: str = Field(min_length=1, max_length=500)


class SignOffResult(BaseModel):
    accepted: bool
    attempts_left: int


class FulfilmentState(BaseModel):
    prescription_id: str
    stage: FulfilmentStage
    pickup: PickupMethod
    pharmacy_order_no: str | None = None
    waybill_no: str | None = None
    events: list[CourierEvent] = []
    attempts_left: int | None = None
    failure_reason: str | None = None
    pharmacy: PharmacyRoute | None = None
    recheck: Recheck | None = None


class RefillInput(BaseModel):
    prescription_id: str
    patient_id: str
    # When the patient signed for the medicine: the course counts from here.
    signed_at: datetime


class RefillPlan(BaseModel):
    """When to remind the patient that the medicine runs out (None: too short a course to need it)."""

    remind_at: datetime | None
    course_ends_at: datetime
    doctor_name: str
    disease_name: str


class RefillState(BaseModel):
    prescription_id: str
    remind_at: datetime | None = None
    reminded: bool = False
    # Why no reminder went out, e.g. the prescription was renewed already.
    skipped: str | None = None

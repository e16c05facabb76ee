"""Dispensing, delivery and sign-off (8.3.4, 8.3.7–8.3.9)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from models.prescription import PickupMethod


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


class DispenseCheck(BaseModel):
    """The dispensing pharmacy's pharmacist re-checks the prescription and records the dispensing."""

    pharmacist_id: str
    approve: bool
    note: str = Field(default="", max_length=500)


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

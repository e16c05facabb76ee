"""Partner pharmacies (社会药房) a paid prescription may be routed to besides the hospital's own (8.3.4, 8.3.5.5), and
which pharmacists work at them."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.tables._types import Json, Timestamp


class PartnerPharmacy(SQLModel, table=True):
    """A partner pharmacy as admins configure it: what it offers, where it delivers, and the `pharmacy` adapter
    (an implementation registered under the `qihuang.adapters` entry points) that talks to its system."""

    __tablename__ = "partner_pharmacies"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=100)
    adapter: str = Field(max_length=40)
    # Address prefixes it delivers to ("北京市东城区", "北京市"); empty: it delivers anywhere.
    regions: list[str] = Json(default=[])
    delivers: bool = False
    pickup: bool = False
    decoction: bool = False
    # Where patients pick up, shown to them (a shop's public address and phone, not personal data).
    address: str = Field(default="", max_length=300)
    phone: str = Field(default="", max_length=32)
    # Lower goes first among pharmacies that qualify equally.
    priority: int = 100
    active: bool = True
    created_at: datetime = Timestamp(default_now=True)
    updated_at: datetime = Timestamp(default_now=True)


class PharmacyStaff(SQLModel, table=True):
    """A pharmacist working at a partner pharmacy; pharmacists without a row work at the hospital's own."""

    __tablename__ = "pharmacy_staff"

    pharmacist_id: str = Field(primary_key=True, foreign_key="pharmacists.id", max_length=40)
    pharmacy_id: str = Field(foreign_key="partner_pharmacies.id", index=True, max_length=40)
    assigned_at: datetime = Timestamp(default_now=True)


class SandboxPartnerStock(SQLModel, table=True):
    """The shelves of sandbox partner pharmacies (grams per herb), standing in for their own stock systems."""

    __tablename__ = "sandbox_partner_stock"

    pharmacy_id: str = Field(primary_key=True, max_length=40)
    herb: str = Field(primary_key=True, max_length=40)
    stock_g: int = Field(ge=0)

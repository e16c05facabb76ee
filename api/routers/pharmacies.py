"""Pharmacies that dispense paid prescriptions (8.3.4, 8.3.5.5, 8.3.6.2): the partner pharmacies (社会药房) patients
may choose, the orders waiting at a pharmacist's own pharmacy, and the admins' configuration of partners and their
pharmacists. Which pharmacy gets a prescription is decided by the routing rule when it is paid
(activities/pharmacy_routing.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select
from sqlmodel import col

from activities.adapters.registry import available
from api.auth import ActorDep, AdminDep, PharmacistDep
from api.deps import SessionDep, SettingsDep
from api.errors import Problem, problem_responses
from api.services import pharmacies
from api.services.audit import audit
from models.fulfilment import OWN_PHARMACY, OWN_PHARMACY_NAME, FulfilmentStage
from models.tables import Fulfilment, PartnerPharmacy, PharmacyStaff

router = APIRouter(tags=["pharmacies"])

PharmacyId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
PharmacistId = Annotated[str, Path(max_length=40)]


class PharmacyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["同仁堂东城店"])
    adapter: str = Field(
        min_length=1, max_length=40, description="对接该药店系统的 pharmacy 适配器名", examples=["sandbox"]
    )
    regions: list[str] = Field(
        default=[], max_length=100, description="配送范围：地址前缀；为空表示不限", examples=[["北京市东城区"]]
    )
    delivers: bool = Field(default=False, description="提供配送到家")
    pickup: bool = Field(default=False, description="提供到店取药")
    decoction: bool = Field(default=False, description="提供代煎")
    address: str = Field(default="", max_length=300, description="门店地址（到店取药）")
    phone: str = Field(default="", max_length=32)
    priority: int = Field(default=100, ge=0, le=10_000, description="同等条件下数值小者优先")
    active: bool = True


class PharmacyOut(BaseModel):
    pharmacy_id: str
    name: str
    own: bool
    regions: list[str]
    delivers: bool
    pickup: bool
    decoction: bool
    address: str
    phone: str

    @classmethod
    def of(cls, row: PartnerPharmacy) -> PharmacyOut:
        return cls(
            pharmacy_id=row.id,
            name=row.name,
            own=False,
            regions=row.regions,
            delivers=row.delivers,
            pickup=row.pickup,
            decoction=row.decoction,
            address=row.address,
            phone=row.phone,
        )


class PharmacyAdminOut(PharmacyOut):
    adapter: str
    priority: int
    active: bool
    pharmacists: list[str]


class OrderOut(BaseModel):
    prescription_id: str
    stage: FulfilmentStage
    pickup: str
    pharmacy_order_no: str | None
    reason: str | None = Field(description="派送到本药店的理由")
    updated_at: datetime


@router.get("/pharmacies", response_model=list[PharmacyOut], responses=problem_responses(401), summary="合作药店")
async def list_pharmacies(actor: ActorDep, session: SessionDep) -> list[PharmacyOut]:
    """The partner pharmacies in service, for the patient choosing where to pick up (药店取药) or who delivers."""
    rows = await session.execute(
        select(PartnerPharmacy)
        .where(col(PartnerPharmacy.active).is_(True))
        .order_by(col(PartnerPharmacy.priority), col(PartnerPharmacy.id))
    )
    return [PharmacyOut.of(row) for row in rows.scalars()]


@router.get(
    "/pharmacies/me/orders",
    response_model=list[OrderOut],
    responses=problem_responses(401, 403),
    summary="本药店的调剂任务",
)
async def my_orders(
    actor: PharmacistDep,
    session: SessionDep,
    stage: FulfilmentStage = Query(default=FulfilmentStage.AT_PHARMACY, description="默认为待复核调剂"),
    limit: int = Query(default=50, ge=1, le=200),
) -> list[OrderOut]:
    """Prescriptions routed to the pharmacy the caller works at, oldest first."""
    pharmacy_id = await pharmacies.pharmacy_of(session, actor.ref or "")
    here = col(Fulfilment.pharmacy_id) == pharmacy_id
    if pharmacy_id == OWN_PHARMACY:  # flows from before routing went to the own pharmacy
        here = or_(here, col(Fulfilment.pharmacy_id).is_(None))
    rows = await session.execute(
        select(Fulfilment)
        .where(here, col(Fulfilment.stage) == stage.value)
        .order_by(col(Fulfilment.updated_at))
        .limit(limit)
    )
    return [
        OrderOut(
            prescription_id=row.prescription_id,
            stage=FulfilmentStage(row.stage),
            pickup=row.pickup,
            pharmacy_order_no=row.pharmacy_order_no,
            reason=row.pharmacy_reason,
            updated_at=row.updated_at,
        )
        for row in rows.scalars()
    ]


@router.get(
    "/admin/pharmacies",
    response_model=list[PharmacyAdminOut],
    responses=problem_responses(401, 403),
    summary="药店配置",
)
async def admin_pharmacies(actor: AdminDep, session: SessionDep, settings: SettingsDep) -> list[PharmacyAdminOut]:
    """The hospital's own pharmacy (configured in settings) first, then every partner, in service or not."""
    staff: dict[str, list[str]] = {}
    for member in (await session.execute(select(PharmacyStaff))).scalars():
        staff.setdefault(member.pharmacy_id, []).append(member.pharmacist_id)
    own = PharmacyAdminOut(
        pharmacy_id=OWN_PHARMACY,
        name=OWN_PHARMACY_NAME,
        own=True,
        regions=settings.own_pharmacy_regions,
        delivers=True,
        pickup=True,
        decoction=settings.own_pharmacy_decoction,
        address="",
        phone="",
        adapter=settings.adapter_pharmacy,
        priority=0,
        active=True,
        pharmacists=[],
    )
    rows = await session.execute(select(PartnerPharmacy).order_by(col(PartnerPharmacy.id)))
    return [own] + [_admin_out(row, sorted(staff.get(row.id, []))) for row in rows.scalars()]


def _admin_out(row: PartnerPharmacy, pharmacists: list[str]) -> PharmacyAdminOut:
    return PharmacyAdminOut(
        **PharmacyOut.of(row).model_dump(),
        adapter=row.adapter,
        priority=row.priority,
        active=row.active,
        pharmacists=pharmacists,
    )


@router.put(
    "/admin/pharmacies/{pharmacy_id}",
    response_model=PharmacyAdminOut,
    responses=problem_responses(401, 403, 409, 422),
    summary="新增或修改合作药店",
)
async def put_pharmacy(
    pharmacy_id: PharmacyId, body: PharmacyIn, request: Request, actor: AdminDep, session: SessionDep
) -> PharmacyAdminOut:
    """The adapter must be one installed under the `qihuang.adapters` entry points (409 `UNKNOWN_ADAPTER`). Turning
    a partner off (`active: false`) routes no new prescriptions to it; orders it holds stay with it."""
    if body.adapter not in available("pharmacy"):
        raise Problem(409, "UNKNOWN_ADAPTER", "适配器不存在", f"没有名为 {body.adapter} 的药房适配器")
    row, created = await pharmacies.save_partner(session, pharmacy_id, body.model_dump())
    audit(
        session,
        actor,
        "pharmacy.created" if created else "pharmacy.updated",
        "pharmacy",
        pharmacy_id,
        detail={"adapter": body.adapter, "active": body.active},
        request=request,
    )
    await session.commit()
    members = (
        await session.execute(
            select(col(PharmacyStaff.pharmacist_id)).where(col(PharmacyStaff.pharmacy_id) == pharmacy_id)
        )
    ).scalars()
    return _admin_out(row, sorted(members))


@router.put(
    "/admin/pharmacies/{pharmacy_id}/pharmacists/{pharmacist_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404),
    summary="指定药店药师",
)
async def assign_pharmacist(
    pharmacy_id: PharmacyId, pharmacist_id: PharmacistId, request: Request, actor: AdminDep, session: SessionDep
) -> None:
    """The pharmacist re-checks and dispenses the prescriptions routed to this partner (and no longer those of the
    hospital's own pharmacy)."""
    await pharmacies.assign(session, pharmacy_id, pharmacist_id)
    audit(session, actor, "pharmacy.pharmacist_assigned", "pharmacy", pharmacy_id, request=request,
          detail={"pharmacist_id": pharmacist_id})  # fmt: skip
    await session.commit()


@router.delete(
    "/admin/pharmacies/{pharmacy_id}/pharmacists/{pharmacist_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404),
    summary="移出药店药师",
)
async def unassign_pharmacist(
    pharmacy_id: PharmacyId, pharmacist_id: PharmacistId, request: Request, actor: AdminDep, session: SessionDep
) -> None:
    await pharmacies.unassign(session, pharmacy_id, pharmacist_id)
    audit(session, actor, "pharmacy.pharmacist_removed", "pharmacy", pharmacy_id, request=request,
          detail={"pharmacist_id": pharmacist_id})  # fmt: skip
    await session.commit()

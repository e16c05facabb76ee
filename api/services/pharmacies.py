"""Partner pharmacies for request handlers: which pharmacy a pharmacist works at, which partner a patient may choose,
and the admins' configuration. A partner's configuration is reference data with no lifecycle, so the API writes it
(audited); routing reads it when a paid prescription is dispatched."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.errors import Problem
from models.fulfilment import OWN_PHARMACY
from models.prescription import PickupChoice, PickupMethod
from models.tables import PartnerPharmacy, Pharmacist, PharmacyStaff


async def pharmacy_of(session: AsyncSession, pharmacist_id: str) -> str:
    """The pharmacy a pharmacist works at: a partner's id, or the hospital's own."""
    partner = await session.scalar(
        select(col(PharmacyStaff.pharmacy_id)).where(col(PharmacyStaff.pharmacist_id) == pharmacist_id)
    )
    return partner or OWN_PHARMACY


async def check_choice(session: AsyncSession, choice: PickupChoice) -> None:
    """A partner the patient names must be active and offer what they ask of it (pickup, or delivery)."""
    if choice.pharmacy_id is None:
        return
    if choice.pickup is PickupMethod.HOSPITAL:
        raise Problem(422, "PHARMACY_NOT_APPLICABLE", "取药方式有误", "院内取药无需选择药店")
    partner = await session.get(PartnerPharmacy, choice.pharmacy_id)
    serves = partner is not None and partner.active
    if serves and partner is not None:
        serves = partner.pickup if choice.pickup is PickupMethod.PHARMACY else partner.delivers
    if not serves:
        what = "取药" if choice.pickup is PickupMethod.PHARMACY else "配送"
        raise Problem(409, "PHARMACY_UNAVAILABLE", "所选药店不可用", f"所选药店不存在或不提供{what}服务")
    if choice.decoction_service and partner is not None and not partner.decoction:
        raise Problem(409, "PHARMACY_UNAVAILABLE", "所选药店不可用", "所选药店不提供代煎服务")


async def save_partner(session: AsyncSession, pharmacy_id: str, values: dict[str, Any]) -> tuple[PartnerPharmacy, bool]:
    """Create or replace a partner's configuration; True when it is new."""
    if pharmacy_id == OWN_PHARMACY:
        raise Problem(409, "RESERVED_ID", "编号已占用", f"“{OWN_PHARMACY}”是本院药房的编号")
    existed = await session.get(PartnerPharmacy, pharmacy_id) is not None
    now = datetime.now(UTC)
    await session.execute(
        insert(PartnerPharmacy)
        .values(id=pharmacy_id, **values, updated_at=now)
        .on_conflict_do_update(index_elements=["id"], set_={**values, "updated_at": now})
    )
    row = await session.get(PartnerPharmacy, pharmacy_id, populate_existing=True)
    assert row is not None
    return row, not existed


async def assign(session: AsyncSession, pharmacy_id: str, pharmacist_id: str) -> None:
    if await session.get(PartnerPharmacy, pharmacy_id) is None:
        raise Problem(404, "NOT_FOUND", "未找到", "合作药店不存在")
    if await session.get(Pharmacist, pharmacist_id) is None:
        raise Problem(404, "NOT_FOUND", "未找到", "药师不存在")
    await session.execute(
        insert(PharmacyStaff)
        .values(pharmacist_id=pharmacist_id, pharmacy_id=pharmacy_id, assigned_at=datetime.now(UTC))
        .on_conflict_do_update(index_elements=["pharmacist_id"], set_={"pharmacy_id": pharmacy_id})
    )


async def unassign(session: AsyncSession, pharmacy_id: str, pharmacist_id: str) -> None:
    row = await session.get(PharmacyStaff, pharmacist_id)
    if row is None or row.pharmacy_id != pharmacy_id:
        raise Problem(404, "NOT_FOUND", "未找到", "该药师不在此药店")
    await session.delete(row)

"""Who may see which record. Anything an actor may not see does not exist for them: 404, never 403, so ids of
other patients' records cannot be probed."""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import Actor
from api.context import AppContext
from api.errors import Problem
from models.common import Role
from models.tables import Bill, Prescription, Visit, VisitConsultant


def not_found(what: str) -> Problem:
    return Problem(404, "NOT_FOUND", "未找到", f"{what}不存在")


def treated_by(doctor_id: str | None) -> ColumnElement[bool]:
    """Visits the doctor is the doctor of, or was invited into (会诊)."""
    invited = exists().where(
        col(VisitConsultant.visit_id) == col(Visit.id), col(VisitConsultant.doctor_id) == doctor_id
    )
    return or_(col(Visit.doctor_id) == doctor_id, invited)


async def treats(session: AsyncSession, visit_id: str, doctor_id: str | None) -> bool:
    """Whether the doctor is the visit's own or one invited into its consult."""
    found = await session.scalar(select(col(Visit.id)).where(col(Visit.id) == visit_id, treated_by(doctor_id)))
    return found is not None


async def visible_visit(session: AsyncSession, actor: Actor, visit_id: str) -> Visit:
    visit = await session.get(Visit, visit_id)
    if visit is None or not (
        actor.role is Role.ADMIN
        or (actor.role is Role.PATIENT and visit.patient_id == actor.ref)
        or (actor.role is Role.DOCTOR and await treats(session, visit_id, actor.ref))
    ):
        raise not_found("挂号记录")
    return visit


_HOLDER = "SELECT 1 FROM slots WHERE visit_id = $1 AND patient_id = $2"


async def booked_visit(ctx: AppContext, actor: Actor, visit_id: str) -> None:
    """The patient's own visit, also in the instant between the booking answer and the flow recording the visit:
    the slot it holds says whose it is."""
    if await ctx.pg.fetchval(_HOLDER, visit_id, actor.ref) is not None:
        return
    async with ctx.sessions() as session:
        await visible_visit(session, actor, visit_id)


async def visible_prescription(session: AsyncSession, actor: Actor, prescription_id: str) -> Prescription:
    rx = await session.get(Prescription, prescription_id)
    if rx is None or not (
        actor.role in (Role.ADMIN, Role.PHARMACIST)
        or (actor.role is Role.PATIENT and rx.patient_id == actor.ref)
        or (actor.role is Role.DOCTOR and (rx.doctor_id == actor.ref or await treats(session, rx.visit_id, actor.ref)))
    ):
        raise not_found("处方")
    return rx


async def visible_bill(session: AsyncSession, actor: Actor, bill_id: str) -> Bill:
    bill = await session.get(Bill, bill_id)
    if bill is None or not (
        actor.role in (Role.ADMIN, Role.FINANCE) or (actor.role is Role.PATIENT and bill.patient_id == actor.ref)
    ):
        raise not_found("订单")
    return bill

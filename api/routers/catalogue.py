"""Public reads for choosing a doctor and a time: departments, doctors, slots, diseases. No login needed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import SessionDep
from api.errors import Problem, problem_responses
from api.hospital_time import hospital_today
from api.queries import catalogue
from api.queries.catalogue import DoctorFilters
from api.schemas.catalogue import DepartmentOut, DiseaseOut, DoctorOut, SlotOut
from api.schemas.common import Limit, Offset, Page
from models.tables import Doctor

router = APIRouter(tags=["catalogue"])


def _doctor_out(doctor: Doctor, department_name: str) -> DoctorOut:
    return DoctorOut(
        id=doctor.id,
        name=doctor.name,
        title=doctor.title,
        department_id=doctor.department_id,
        department_name=department_name,
        specialties=doctor.specialties,
        introduction=doctor.introduction,
    )


def _not_found(what: str) -> Problem:
    return Problem(404, "NOT_FOUND", "请求的资源不存在", f"{what}不存在。")


@router.get("/departments", response_model=list[DepartmentOut], summary="科室列表")
async def departments(session: SessionDep) -> list[DepartmentOut]:
    return [DepartmentOut.model_validate(row) for row in await catalogue.list_departments(session)]


@router.get(
    "/departments/{department_id}/doctors",
    response_model=Page[DoctorOut],
    responses=problem_responses(404, 422),
    summary="科室的医生",
)
async def department_doctors(
    department_id: str, session: SessionDep, limit: Limit = 20, offset: Offset = 0
) -> Page[DoctorOut]:
    if not await catalogue.department_exists(session, department_id):
        raise _not_found("科室")
    rows, total = await catalogue.list_doctors(
        session, DoctorFilters(department_id=department_id), datetime.now(UTC), limit=limit, offset=offset
    )
    return Page(items=[_doctor_out(*row) for row in rows], total=total, limit=limit, offset=offset)


@router.get("/doctors", response_model=Page[DoctorOut], responses=problem_responses(422), summary="查找医生")
async def doctors(
    session: SessionDep,
    department_id: Annotated[str | None, Query(description="科室")] = None,
    title: Annotated[str | None, Query(description="职称，如 主任医师")] = None,
    disease_code: Annotated[str | None, Query(description="有该病种的号源")] = None,
    day: Annotated[date | None, Query(alias="date", description="该日（北京时间，YYYY-MM-DD）有号源")] = None,
    available: Annotated[bool, Query(description="true：只看现在还有可预约号源的医生")] = False,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[DoctorOut]:
    """Doctors by name. Filters on slots (disease, date, available) look at upcoming slots only."""
    filters = DoctorFilters(
        department_id=department_id, title=title, disease_code=disease_code, day=day, available=available
    )
    rows, total = await catalogue.list_doctors(session, filters, datetime.now(UTC), limit=limit, offset=offset)
    return Page(items=[_doctor_out(*row) for row in rows], total=total, limit=limit, offset=offset)


@router.get("/doctors/{doctor_id}", response_model=DoctorOut, responses=problem_responses(404), summary="医生详情")
async def doctor(doctor_id: str, session: SessionDep) -> DoctorOut:
    row = await catalogue.get_doctor(session, doctor_id)
    if row is None:
        raise _not_found("医生")
    return _doctor_out(*row)


@router.get(
    "/doctors/{doctor_id}/slots",
    response_model=list[SlotOut],
    responses=problem_responses(404, 422),
    summary="医生某日的号源",
)
async def doctor_slots(
    doctor_id: str,
    session: SessionDep,
    day: Annotated[date | None, Query(alias="date", description="北京时间日期 YYYY-MM-DD，默认今天")] = None,
) -> list[SlotOut]:
    """All slots of that day in time order; taken, held or past ones are `unavailable`."""
    if await catalogue.get_doctor(session, doctor_id) is None:
        raise _not_found("医生")
    now = datetime.now(UTC)
    slots = await catalogue.doctor_slots(session, doctor_id, day or hospital_today(now), now)
    return [
        SlotOut(
            id=slot.id,
            starts_at=slot.starts_at,
            ends_at=slot.ends_at,
            fee_fen=slot.fee_fen,
            service_type=slot.service_type,
            disease_code=slot.disease_code,
            status="open" if is_bookable else "unavailable",
        )
        for slot, is_bookable in slots
    ]


@router.get("/diseases", response_model=list[DiseaseOut], summary="可复诊病种")
async def diseases(
    session: SessionDep, department_id: Annotated[str | None, Query(description="科室")] = None
) -> list[DiseaseOut]:
    return [DiseaseOut.model_validate(row) for row in await catalogue.list_diseases(session, department_id)]

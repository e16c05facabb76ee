"""Public reads for choosing a doctor and a time: departments, doctors, slots, diseases; the published service scope,
admission conditions and booking rules; stop/substitution notices. No login needed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import SessionDep, SettingsDep
from api.errors import Problem, problem_responses
from api.hospital_time import SHANGHAI, hospital_today
from api.queries import catalogue
from api.queries.catalogue import DoctorFilters, Notice
from api.schemas.catalogue import (
    DepartmentOut,
    DiseaseOut,
    DoctorOut,
    NoticeOut,
    ServiceInfo,
    ServiceType,
    SlotOut,
)
from api.schemas.common import Limit, Offset, Page
from api.services.schedule_rules import MAX_FEE_FEN
from api.services.service_info import service_info as build_service_info

router = APIRouter(tags=["catalogue"])

Fee = Annotated[int | None, Query(ge=0, le=MAX_FEE_FEN)]


def _not_found(what: str) -> Problem:
    return Problem(404, "NOT_FOUND", "请求的资源不存在", f"{what}不存在。")


@router.get("/departments", response_model=list[DepartmentOut], summary="科室列表")
async def departments(session: SessionDep, settings: SettingsDep) -> list[DepartmentOut]:
    """Only departments within the physical hospital's registered 诊疗科目 (the internet hospital may not practise
    beyond them)."""
    subjects = settings.registered_subjects
    return [DepartmentOut.of(row, subjects) for row in await catalogue.list_departments(session, subjects)]


@router.get(
    "/departments/{department_id}/doctors",
    response_model=Page[DoctorOut],
    responses=problem_responses(404, 422),
    summary="科室的医生",
)
async def department_doctors(
    department_id: str, session: SessionDep, settings: SettingsDep, limit: Limit = 20, offset: Offset = 0
) -> Page[DoctorOut]:
    """404 also for a department whose 诊疗科目 is no longer registered."""
    subjects = settings.registered_subjects
    if not await catalogue.department_offered(session, department_id, subjects):
        raise _not_found("科室")
    filters = DoctorFilters(department_id=department_id)
    rows, total = await catalogue.list_doctors(
        session, filters, datetime.now(UTC), subjects, limit=limit, offset=offset
    )
    return Page(items=[DoctorOut.of(*row) for row in rows], total=total, limit=limit, offset=offset)


@router.get("/doctors", response_model=Page[DoctorOut], responses=problem_responses(422), summary="查找医生")
async def doctors(
    session: SessionDep,
    settings: SettingsDep,
    department_id: Annotated[str | None, Query(description="科室")] = None,
    title: Annotated[str | None, Query(description="职称，如 主任医师")] = None,
    specialty: Annotated[str | None, Query(min_length=1, max_length=50, description="擅长（包含该文字）")] = None,
    disease_code: Annotated[str | None, Query(description="有该病种的号源")] = None,
    day: Annotated[date | None, Query(alias="date", description="该日（北京时间，YYYY-MM-DD）有号源")] = None,
    service_type: Annotated[ServiceType | None, Query(description="有该问诊方式的号源")] = None,
    min_fee_fen: Annotated[Fee, Query(description="号源挂号费不低于（分）")] = None,
    max_fee_fen: Annotated[Fee, Query(description="号源挂号费不高于（分）")] = None,
    available: Annotated[bool, Query(description="true：只看现在还有可预约号源的医生")] = False,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[DoctorOut]:
    """Active doctors by name. Filters on slots (disease, date, service type, fee, available) are met together by at
    least one upcoming slot: `date` + `service_type=video` + `available=true` finds doctors with a free video slot
    that day. Doctors of a department whose 诊疗科目 is no longer registered are left out. 422 `BAD_FEE_RANGE` when
    `min_fee_fen` exceeds `max_fee_fen`."""
    if min_fee_fen is not None and max_fee_fen is not None and min_fee_fen > max_fee_fen:
        raise Problem(422, "BAD_FEE_RANGE", "价格区间有误", "最低挂号费不能高于最高挂号费。")
    filters = DoctorFilters(
        department_id=department_id,
        title=title,
        specialty=specialty,
        disease_code=disease_code,
        day=day,
        service_type=service_type,
        min_fee_fen=min_fee_fen,
        max_fee_fen=max_fee_fen,
        available=available,
    )
    rows, total = await catalogue.list_doctors(
        session, filters, datetime.now(UTC), settings.registered_subjects, limit=limit, offset=offset
    )
    return Page(items=[DoctorOut.of(*row) for row in rows], total=total, limit=limit, offset=offset)


@router.get("/doctors/{doctor_id}", response_model=DoctorOut, responses=problem_responses(404), summary="医生详情")
async def doctor(doctor_id: str, session: SessionDep) -> DoctorOut:
    """Also for an inactive doctor (`active: false`), whom patients may still meet in their past visits."""
    row = await catalogue.get_doctor(session, doctor_id)
    if row is None:
        raise _not_found("医生")
    return DoctorOut.of(*row)


@router.get(
    "/doctors/{doctor_id}/slots",
    response_model=list[SlotOut],
    responses=problem_responses(404, 422),
    summary="医生某日的号源",
)
async def doctor_slots(
    doctor_id: str,
    session: SessionDep,
    settings: SettingsDep,
    day: Annotated[date | None, Query(alias="date", description="北京时间日期 YYYY-MM-DD，默认今天")] = None,
) -> list[SlotOut]:
    """All slots of that day in time order. Taken, held, past and closed ones are `unavailable`, and so are extra
    slots reserved for a named patient (only that patient may book them, from the notice they were sent) and every
    slot of an inactive doctor or of a department whose 诊疗科目 is no longer registered."""
    found = await catalogue.get_doctor(session, doctor_id)
    if found is None:
        raise _not_found("医生")
    doctor, _ = found
    offered = doctor.active and await catalogue.department_offered(
        session, doctor.department_id, settings.registered_subjects
    )
    now = datetime.now(UTC)
    slots = await catalogue.doctor_slots(session, doctor_id, day or hospital_today(now), now)
    return [
        SlotOut(
            id=slot.id,
            schedule_id=slot.schedule_id,
            starts_at=slot.starts_at,
            ends_at=slot.ends_at,
            fee_fen=slot.fee_fen,
            service_type=slot.service_type,
            disease_code=slot.disease_code,
            status="open" if is_bookable and offered else "unavailable",
            is_extra=slot.is_extra,
            reserved=slot.reserved_for is not None,
        )
        for slot, is_bookable in slots
    ]


@router.get("/diseases", response_model=list[DiseaseOut], summary="可复诊病种")
async def diseases(
    session: SessionDep, department_id: Annotated[str | None, Query(description="科室")] = None
) -> list[DiseaseOut]:
    return [DiseaseOut.model_validate(row) for row in await catalogue.list_diseases(session, department_id)]


@router.get("/service-info", response_model=ServiceInfo, summary="在线复诊服务范围、准入条件与预约规则")
async def service_info(session: SessionDep, settings: SettingsDep) -> ServiceInfo:
    """What the patient app shows prominently (8.1.1.1, 8.6.3 g): the online revisit scope (departments and the
    diseases that may be followed up, service types, fee standards), admission conditions and booking rules."""
    return build_service_info(
        settings, await catalogue.departments_with_diseases(session, settings.registered_subjects)
    )


_KIND_NAMES = {"leave": "停诊", "substitution": "替诊"}


def _notice_out(notice: Notice) -> NoticeOut:
    schedule, doctor, substitute = notice.schedule, notice.doctor, notice.substitute
    start, end = schedule.starts_at.astimezone(SHANGHAI), schedule.ends_at.astimezone(SHANGHAI)
    session_text = f"{doctor.name}{doctor.title} {start.month}月{start.day}日 {start:%H:%M}–{end:%H:%M} 的出诊"
    if notice.change.kind == "substitution" and substitute is not None:
        message = f"{session_text}改由{substitute.name}{substitute.title}替诊。"
    else:
        message = f"{session_text}停诊，已预约的患者可改约其他号源或申请全额退款。"
    return NoticeOut(
        id=notice.change.id,
        kind=notice.change.kind,
        kind_name=_KIND_NAMES[notice.change.kind],
        schedule_id=schedule.id,
        doctor_id=doctor.id,
        doctor_name=doctor.name,
        department_name=notice.department_name,
        day=schedule.day,
        starts_at=schedule.starts_at,
        ends_at=schedule.ends_at,
        substitute_doctor_id=substitute.id if substitute else None,
        substitute_doctor_name=substitute.name if substitute else None,
        message=message,
        announced_at=notice.change.created_at,
    )


@router.get("/notices", response_model=Page[NoticeOut], responses=problem_responses(422), summary="停诊/替诊公告")
async def notices(
    session: SessionDep,
    department_id: Annotated[str | None, Query(max_length=40, description="科室")] = None,
    doctor_id: Annotated[str | None, Query(max_length=40, description="医生（原出诊或替诊医生）")] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[NoticeOut]:
    """Leaves (停诊) and substitutions (替诊) of sessions from today on (Asia/Shanghai), soonest session first."""
    rows, total = await catalogue.list_notices(
        session, hospital_today(), department_id=department_id, doctor_id=doctor_id, limit=limit, offset=offset
    )
    return Page(items=[_notice_out(row) for row in rows], total=total, limit=limit, offset=offset)

"""Schedules (排班管理, 8.6.1 h) for admins: publish, edit, list, batch import; extra slots (加号, 8.1.1.5) for the
session's doctor or an admin. Every change is audited in the transaction that makes it."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, File, Header, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from api.auth import AdminDep, StaffDep
from api.deps import SessionDep, SettingsDep
from api.errors import Problem, problem_responses
from api.idempotency import idempotent
from api.queries import schedules as queries
from api.queries.schedules import ScheduleFilters
from api.schemas.catalogue import ServiceType
from api.schemas.common import Limit, Offset, Page
from api.schemas.schedules import (
    ExtraSlotIn,
    ExtraSlotOut,
    ImportReport,
    ScheduleDetail,
    ScheduleIn,
    ScheduleOut,
    SchedulePatch,
)
from api.services import schedules
from api.services.audit import audit
from api.services.schedule_import import read_rows
from api.services.schedule_rules import Draft
from api.services.sheet_import import import_responses, rejected_import

router = APIRouter(tags=["schedules"])

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", description="幂等键，建议使用 UUID")]
ScheduleId = Annotated[str, Path(max_length=60)]


async def _detail(session: SessionDep, schedule_id: str, now: datetime) -> ScheduleDetail:
    detail = await queries.get_schedule(session, schedule_id, now)
    if detail is None:
        raise Problem(404, "NOT_FOUND", "请求的资源不存在", "排班不存在。")
    return detail


@router.post(
    "/admin/schedules",
    status_code=201,
    response_model=ScheduleDetail,
    responses=problem_responses(400, 401, 403, 409, 422),
    summary="发布排班",
)
async def create_schedule(
    body: ScheduleIn,
    request: Request,
    actor: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Publish one session and generate its slots. The fee defaults to the doctor's own fee for the service type,
    then to the fee standard of the doctor's title.

    422 `UNKNOWN_DOCTOR`, `DOCTOR_INACTIVE`, `UNKNOWN_DISEASE`, `DISEASE_NOT_IN_DEPARTMENT`, `WINDOW_MISMATCH`,
    `PAST_DATE`, `DATE_TOO_FAR`, `SERVICE_TYPE_NOT_OFFERED`, `FEE_NOT_SET`; 409 `SCHEDULE_OVERLAP`, `SCHEDULE_EXISTS`.
    All reasons are listed in `violations`.
    """

    async def compute() -> tuple[int, dict[str, Any]]:
        now = datetime.now(UTC)
        draft = Draft(**body.model_dump())
        schedule = await schedules.create_schedule(session, draft, settings.fee_standards_fen, now)
        audit(
            session,
            actor,
            "schedule.created",
            "schedule",
            schedule.id,
            detail={"doctor_id": schedule.doctor_id, "capacity": schedule.capacity, "fee_fen": schedule.fee_fen},
            request=request,
        )
        await session.commit()
        return 201, (await _detail(session, schedule.id, now)).model_dump(mode="json")

    return await idempotent(request, actor, idempotency_key, compute)


@router.get(
    "/admin/schedules",
    response_model=Page[ScheduleOut],
    responses=problem_responses(401, 403, 422),
    summary="排班列表",
)
async def list_schedules(
    actor: AdminDep,
    session: SessionDep,
    doctor_id: Annotated[str | None, Query(max_length=40)] = None,
    department_id: Annotated[str | None, Query(max_length=40)] = None,
    date_from: Annotated[date | None, Query(description="起始日期（含）")] = None,
    date_to: Annotated[date | None, Query(description="截止日期（含）")] = None,
    status: Annotated[str | None, Query(pattern="^(published|cancelled|substituted)$")] = None,
    service_type: ServiceType | None = None,
    disease_code: Annotated[str | None, Query(max_length=32)] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[ScheduleOut]:
    """In calendar order, with slot counts."""
    filters = ScheduleFilters(doctor_id, department_id, date_from, date_to, status, service_type, disease_code)
    items, total = await queries.list_schedules(session, filters, datetime.now(UTC), limit=limit, offset=offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/admin/schedules/{schedule_id}",
    response_model=ScheduleDetail,
    responses=problem_responses(401, 403, 404),
    summary="排班详情",
)
async def get_schedule(schedule_id: ScheduleId, actor: AdminDep, session: SessionDep) -> ScheduleDetail:
    """The session with every slot, including who added each extra slot, when and why."""
    return await _detail(session, schedule_id, datetime.now(UTC))


@router.patch(
    "/admin/schedules/{schedule_id}",
    response_model=ScheduleDetail,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="修改排班",
)
async def edit_schedule(
    schedule_id: ScheduleId,
    body: SchedulePatch,
    request: Request,
    actor: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
) -> ScheduleDetail:
    """Change a session. A larger capacity adds slots, a smaller one removes them, a new window moves them.

    409 `SCHEDULE_HAS_BOOKINGS` when time, capacity, fee, service type or disease change while a slot is held or
    booked (use leave or substitution instead); 409 `SCHEDULE_NOT_PUBLISHED`, `EXTRA_CAP_BELOW_USED`,
    `SCHEDULE_OVERLAP`; 422 as for publishing.
    """
    now = datetime.now(UTC)
    schedule, changes = await schedules.edit_schedule(session, schedule_id, body, settings.fee_standards_fen, now)
    if changes:
        audit(session, actor, "schedule.updated", "schedule", schedule.id, detail={"changes": changes}, request=request)
        await session.commit()
    return await _detail(session, schedule_id, now)


@router.post(
    "/admin/schedules/import",
    status_code=201,
    response_model=ImportReport,
    responses=import_responses(ImportReport, "排班"),
    summary="批量导入排班",
)
async def import_schedules(
    file: Annotated[UploadFile, File(description="CSV（UTF-8 或 GBK）或 XLSX 文件")],
    request: Request,
    actor: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    dry_run: Annotated[bool, Query(description="true：只检查，不导入")] = False,
) -> JSONResponse:
    """Publish many sessions from a CSV or XLSX file (multipart field `file`).

    Columns (English or zh-CN header): doctor_id 医生编号, date 日期, start 开始时间, end 结束时间, slot_minutes
    每号分钟数, capacity 号数, service_type 问诊方式, disease_code 病种编码, and optionally fee_fen 挂号费(分),
    extra_cap 加号上限, note 备注. All or nothing: if any row is bad nothing is imported. Importing the same file
    again is refused row by row with `SCHEDULE_EXISTS`, so a retried upload never publishes a session twice.

    `dry_run=true` answers 200 with every bad row (line number, column, code, reason); a real import answers 201 with
    the counts, or 422 `IMPORT_REJECTED` with the same `errors`. A file that cannot be read as a whole gets 400
    (`IMPORT_EMPTY_FILE`, `IMPORT_NO_ROWS`, `IMPORT_BAD_ENCODING`, `IMPORT_BAD_CSV`, `IMPORT_BAD_XLSX`,
    `IMPORT_BAD_COLUMNS`), 413 (`IMPORT_TOO_MANY_ROWS`, `IMPORT_FILE_TOO_LARGE`, `PAYLOAD_TOO_LARGE`) or 415
    (`IMPORT_UNSUPPORTED_FILE` for legacy .xls).
    """
    rows = await to_thread.run_sync(read_rows, await file.read())
    now = datetime.now(UTC)
    created, errors, slots = await schedules.import_rows(
        session, rows, settings.fee_standards_fen, now, dry_run=dry_run
    )
    ok = not errors
    report = ImportReport(
        dry_run=dry_run,
        ok=ok,
        rows=len(rows),
        schedules=len(rows) if ok else 0,
        slots=slots if ok else 0,
        errors=errors,
    )
    if dry_run:
        return JSONResponse(report.model_dump(mode="json"))
    if errors:
        raise rejected_import(len(rows), errors, "排班导入失败", "导入任何排班")
    audit(
        session,
        actor,
        "schedule.imported",
        "schedule_import",
        f"import-{secrets.token_hex(6)}",
        detail={"schedule_ids": [schedule.id for schedule in created], "slots": slots},
        request=request,
    )
    await session.commit()
    return JSONResponse(report.model_dump(mode="json"), status_code=201)


@router.post(
    "/schedules/{schedule_id}/extra-slots",
    status_code=201,
    response_model=ExtraSlotOut,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
    summary="加号",
)
async def add_extra_slot(
    schedule_id: ScheduleId,
    body: ExtraSlotIn,
    request: Request,
    actor: StaffDep,
    session: SessionDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Add a slot to a session, by its doctor or an admin, with the reason; recorded with who and when.

    With `patient_id` only that patient may book it (others see it as unavailable) and the patient is notified.
    409 `EXTRA_SLOT_CAP_REACHED` once the session's `extra_cap` is used up, `SCHEDULE_NOT_PUBLISHED`;
    422 `EXTRA_SLOT_IN_PAST`, `EXTRA_SLOT_OUTSIDE_DAY`; 404 for an unknown session or patient;
    403 for another doctor's session.
    """

    async def compute() -> tuple[int, dict[str, Any]]:
        slot, schedule = await schedules.add_extra_slot(session, schedule_id, body, actor, datetime.now(UTC))
        audit(
            session,
            actor,
            "slot.extra_added",
            "slot",
            slot.id,
            reason=body.reason,
            detail={"schedule_id": schedule.id, "doctor_id": schedule.doctor_id, "reserved_for": slot.reserved_for},
            request=request,
        )
        await session.commit()
        return 201, ExtraSlotOut.model_validate(slot).model_dump(mode="json")

    return await idempotent(request, actor, idempotency_key, compute)

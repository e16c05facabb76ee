"""Departments, kept by admins. Each practises under a 诊疗科目 (diagnosis-and-treatment subject) registered on the
practice licence of the physical hospital this internet hospital relies on (`Settings.registered_subjects`): an
internet hospital may not practise beyond its subjects (互联网诊疗管理办法), so no department is given another one.
A department whose subject was later struck from the registration stays here, flagged, and leaves the public
catalogue. Every change is audited."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from api.auth import AdminDep
from api.deps import SessionDep, SettingsDep
from api.errors import Problem, problem_responses
from api.idempotency import idempotent
from api.queries.catalogue import list_departments
from api.schemas.departments import AdminDepartmentOut, DepartmentIn, DepartmentPatch
from api.services.audit import audit
from models.tables import Department

router = APIRouter(prefix="/admin/departments", tags=["catalogue"])

DepartmentId = Annotated[str, Path(max_length=40)]


def _registered(code: str, subjects: Mapping[str, str]) -> str:
    if code not in subjects:
        raise Problem(
            422,
            "SUBJECT_NOT_REGISTERED",
            "诊疗科目未登记",
            f"诊疗科目代码 {code} 不在本院实体医疗机构登记的诊疗科目范围内，互联网诊疗不得超出该范围。",
            subject_code=code,
        )
    return code


@router.get(
    "", response_model=list[AdminDepartmentOut], responses=problem_responses(401, 403), summary="科室列表（管理）"
)
async def admin_list(actor: AdminDep, session: SessionDep, settings: SettingsDep) -> list[AdminDepartmentOut]:
    """Every department by name, including those whose 诊疗科目 is no longer registered (`in_scope: false`)."""
    subjects = settings.registered_subjects
    return [AdminDepartmentOut.of(row, subjects) for row in await list_departments(session)]


@router.post(
    "",
    status_code=201,
    response_model=AdminDepartmentOut,
    responses=problem_responses(401, 403, 409, 422),
    summary="新增科室",
)
async def create_department(
    body: DepartmentIn,
    request: Request,
    actor: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
) -> JSONResponse:
    """422 `SUBJECT_NOT_REGISTERED` for a 诊疗科目 outside the registered ones; 409 `DEPARTMENT_EXISTS` for an id
    already taken."""
    subjects = settings.registered_subjects

    async def compute() -> tuple[int, dict[str, Any]]:
        _registered(body.subject_code, subjects)
        # Inserted only where the id is free, so two admins creating the same id get one department and one 409.
        created = await session.execute(
            insert(Department).values(**body.model_dump()).on_conflict_do_nothing().returning(col(Department.id))
        )
        if created.first() is None:
            raise Problem(409, "DEPARTMENT_EXISTS", "科室已存在", f"科室编号 {body.id} 已被使用。")
        audit(
            session,
            actor,
            "department.created",
            "department",
            body.id,
            detail={"subject_code": body.subject_code},
            request=request,
        )
        await session.commit()
        out = AdminDepartmentOut(
            **body.model_dump(), subject_name=subjects[body.subject_code], in_scope=True, active=True
        )
        return 201, out.model_dump(mode="json")

    return await idempotent(request, actor, idempotency_key, compute)


@router.patch(
    "/{department_id}",
    response_model=AdminDepartmentOut,
    responses=problem_responses(401, 403, 404, 422),
    summary="修改科室",
)
async def edit_department(
    department_id: DepartmentId,
    body: DepartmentPatch,
    request: Request,
    actor: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
) -> AdminDepartmentOut:
    """Name, description, 诊疗科目 (422 `SUBJECT_NOT_REGISTERED` outside the registered ones), and whether it is
    enabled (`active: false` disables it: 8.6.1 b 禁用科室). A department whose subject left the registration can still
    be renamed, and returns to the public catalogue once given a registered one."""
    subjects = settings.registered_subjects
    department = await session.get(Department, department_id, with_for_update=True)
    if department is None:
        raise Problem(404, "NOT_FOUND", "请求的资源不存在", "科室不存在。")
    changes: dict[str, str | bool] = {}
    if body.name is not None and body.name != department.name:
        department.name = changes["name"] = body.name
    if body.description is not None and body.description != department.description:
        department.description = changes["description"] = body.description
    if body.subject_code is not None and body.subject_code != department.subject_code:
        department.subject_code = changes["subject_code"] = _registered(body.subject_code, subjects)
    if body.active is not None and body.active != department.active:
        department.active = changes["active"] = body.active
    if changes:
        # Names and descriptions are the hospital's, not a person's: safe in the audit detail.
        audit(
            session,
            actor,
            "department.updated",
            "department",
            department.id,
            detail={"changes": changes},
            request=request,
        )
        await session.commit()
    return AdminDepartmentOut.of(department, subjects)

"""Admin shapes for departments and the 诊疗科目 (diagnosis-and-treatment subject) each practises under."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from models.tables import Department

# A department id goes into paths and other tables' keys.
DEPARTMENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
SubjectCode = Annotated[
    str, Field(min_length=1, max_length=16, description="诊疗科目代码，须为本院实体医疗机构已登记的诊疗科目")
]


class DepartmentIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"id": "dept-ek", "name": "儿科", "description": "小儿咳嗽、厌食的复诊调理。", "subject_code": "50.04"}
            ]
        },
    )

    id: str = Field(min_length=1, max_length=40, pattern=DEPARTMENT_ID_PATTERN)
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=500)
    subject_code: SubjectCode


class DepartmentPatch(BaseModel):
    """Fields to change; omitted ones stay."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"subject_code": "50.13"}]})

    name: str | None = Field(default=None, min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=500)
    subject_code: SubjectCode | None = None
    active: bool | None = Field(default=None, description="false：禁用科室，不再向患者展示；true：重新启用")


class AdminDepartmentOut(BaseModel):
    id: str
    name: str
    description: str
    subject_code: str = Field(description="诊疗科目代码")
    subject_name: str | None = Field(description="诊疗科目名称；null：该代码已不在登记的诊疗科目中")
    in_scope: bool = Field(description="false：诊疗科目已不在登记范围内，该科室不向患者展示")
    active: bool = Field(description="false：科室已禁用，不向患者展示")

    @classmethod
    def of(cls, department: Department, subjects: Mapping[str, str]) -> AdminDepartmentOut:
        return cls(
            id=department.id,
            name=department.name,
            description=department.description,
            subject_code=department.subject_code,
            subject_name=subjects.get(department.subject_code),
            in_scope=department.subject_code in subjects,
            active=department.active,
        )

"""Shapes of staff registration and review (8.5.2 doctors, 8.5.3 pharmacists) and of account on/off."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.catalogue import DoctorTitle
from api.schemas.schedules import RowError
from models.onboarding import Affiliation, ApplicationStatus, CheckOutcome, DocumentKind, StaffRole

Username = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="登录用户名")


class StaffApplicationIn(BaseModel):
    """A doctor's or pharmacist's own registration: the account and the identity and licence to be reviewed."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "role": "doctor",
                    "username": "dr-li",
                    "password": "Qihuang#2026",
                    "name": "李时珍",
                    "id_card_no": "11010519491231002X",
                    "phone": "13800138000",
                    "department_id": "dep-spleen",
                    "title": "主治医师",
                    "licence_no": "220180301000123",
                    "licence_date": "2018-03-01",
                    "institution": "岐黄中医医院",
                }
            ]
        },
    )

    role: StaffRole
    username: str = Username
    password: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=2, max_length=32, description="真实姓名")
    id_card_no: str = Field(max_length=32, description="18 位居民身份证号码")
    phone: str = Field(pattern=r"^1[0-9]{10}$", description="手机号，审核结果以短信通知")
    department_id: str | None = Field(default=None, max_length=40, description="医生：执业科室")
    title: DoctorTitle | None = Field(default=None, description="医生：职称")
    licence_no: str = Field(min_length=1, max_length=32, description="执业证书编码")
    licence_date: date = Field(description="执业证书首次注册日期：独立执业年限自此起算")
    institution: str | None = Field(default=None, max_length=100, description="执业机构")
    affiliation: Affiliation = Field(default=Affiliation.HOSPITAL, description="药师：本院或第三方合作机构")


class DocumentOut(BaseModel):
    id: str
    kind: DocumentKind
    content_type: str
    size_bytes: int
    sm3: str = Field(description="文件的 SM3 摘要（已记入存证账本）")
    ledger_seq: int | None = Field(description="存证账本条目序号；提交审核后写入")
    created_at: datetime


class ApplicationOut(BaseModel):
    """The applicant's own view of the application."""

    staff_id: str
    role: StaffRole
    status: ApplicationStatus
    affiliation: Affiliation
    required_documents: list[DocumentKind]
    missing_documents: list[DocumentKind]
    documents: list[DocumentOut]
    checks: list[CheckOutcome]
    reason: str | None = Field(description="未通过的原因")
    decided_at: datetime | None
    submitted_at: datetime | None


class ReviewDeadline(BaseModel):
    """Where the admins' review stands against its deadline (8.5.2.2, 8.5.3.2)."""

    review_due_at: datetime | None = Field(description="审核时限")
    escalated_at: datetime | None = Field(description="超过审核时限、已提交督办的时间（申请仍待审核）")


class ApplicationSummary(ReviewDeadline):
    staff_id: str
    user_id: str
    role: StaffRole
    name: str
    status: ApplicationStatus
    source: Literal["self", "import"]
    submitted_at: datetime | None
    created_at: datetime


class AdminApplicationOut(ApplicationOut, ReviewDeadline):
    """What a reviewer sees: the identity masked, the licence, the checks, the documents."""

    user_id: str
    username: str
    name: str
    id_card_masked: str
    phone_masked: str
    department_id: str | None
    title: str | None
    licence_no: str
    licence_date: date
    institution: str | None
    source: Literal["self", "import"]
    attempt: int
    decided_by: str | None


class SubmitOut(BaseModel):
    staff_id: str
    status: ApplicationStatus
    attempt: int
    workflow_id: str


class ReviewIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"approve": False, "reason": "执业证书照片不清晰"}]}
    )

    approve: bool
    reason: str | None = Field(default=None, max_length=500, description="驳回时必填，将通知申请人")


class ImportedAccount(BaseModel):
    line: int
    staff_id: str
    username: str
    # Shown once, here: only its hash is kept. The person changes it after signing in.
    initial_password: str


class StaffImportReport(BaseModel):
    dry_run: bool
    ok: bool = Field(description="全部行均有效（试导入）或已全部导入")
    rows: int
    accounts: list[ImportedAccount] = Field(description="已创建的账号及其初始密码（仅此一次显示）")
    errors: list[RowError]


class AccountStateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class AccountStateOut(BaseModel):
    user_id: str
    disabled: bool
    # Sign-ins ended by disabling the account.
    sessions_ended: int = 0

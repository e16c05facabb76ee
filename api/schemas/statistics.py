"""Shapes of the statistics for a period (数据统计分析, 8.6.5). Money in integer fen."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class BookingStats(BaseModel):
    """预约挂号: bookings made in the period, by where they stand now and by service type (图文/电话/视频)."""

    total: int = 0
    by_stage: dict[str, int] = Field(default_factory=dict)
    by_service_type: dict[str, int] = Field(default_factory=dict)
    fee_fen: int = Field(default=0, description="这些挂号的挂号费合计（分）")


class VisitStats(BaseModel):
    """就诊记录: visits whose slot fell in the period, by stage (finished, aborted, no_show …)."""

    total: int = 0
    by_stage: dict[str, int] = Field(default_factory=dict)


class DepartmentStats(BaseModel):
    """专科门诊: a department's visits in the period."""

    department_id: str
    name: str
    visits: int = 0
    finished: int = 0


class SessionStats(BaseModel):
    """出诊记录: a doctor's sessions (排班) on days of the period, their slots and how many were taken."""

    doctor_id: str
    doctor: str
    sessions: int
    changed: int = Field(description="停诊或替诊的场次")
    slots: int
    taken: int
    extra: int = Field(description="加号数")


class EvaluationStats(BaseModel):
    """服务评价: evaluations written in the period."""

    count: int
    doctor_rating: float | None
    department_rating: float | None
    hospital_rating: float | None
    low: int = Field(description="差评（任一项不高于 2 星）")
    pending: int = Field(description="差评中尚待跟进的")
    hidden: int = Field(description="不公开显示的")


class FinanceStats(BaseModel):
    """财务: bills paid and refunds completed in the period."""

    paid_bills: int = 0
    paid_fen: int = 0
    paid_fen_by_kind: dict[str, int] = Field(default_factory=dict, description="按账单类型（挂号、药费、检查）")
    insurance_fen: int = Field(default=0, description="其中医保支付（分）")
    refunds: int = 0
    refunded_fen: int = 0


class PrescriptionStats(BaseModel):
    """业务: prescriptions written in the period, and medicine received and adverse reactions reported in it."""

    total: int = 0
    by_stage: dict[str, int] = Field(default_factory=dict)
    forced: int = Field(default=0, description="药师退回后医生坚持签发的")
    renewals: int = Field(default=0, description="续方")
    received: int = Field(default=0, description="患者签收的")
    adverse_reactions: int = 0


class DoctorStats(BaseModel):
    """医生: a doctor's visits in the period, prescriptions issued in it, and their patients' ratings."""

    doctor_id: str
    name: str
    visits: int = 0
    finished: int = 0
    prescriptions: int = 0
    evaluations: int = 0
    rating: float | None = None


class PatientStats(BaseModel):
    """患者: new registrations, real-name verifications, and patients seen in the period."""

    registered: int
    verified: int
    seen: int


class DiseaseStats(BaseModel):
    """病种: visits in the period by the disease followed up."""

    code: str
    name: str
    visits: int = 0
    finished: int = 0


class Statistics(BaseModel):
    since: date
    until: date
    bookings: BookingStats
    visits: VisitStats
    departments: list[DepartmentStats]
    sessions: list[SessionStats]
    evaluations: EvaluationStats
    finance: FinanceStats
    prescriptions: PrescriptionStats
    doctors: list[DoctorStats]
    patients: PatientStats
    diseases: list[DiseaseStats]

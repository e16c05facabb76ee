"""Fine-grained permissions (8.6.1 e 业务权限管理): the catalogue and each role's defaults.

The `permissions` and `role_permissions` tables start as copies of these (see the auth-security migration); admins
then change what roles and individual users hold, and the tables are what counts.
"""

from __future__ import annotations

from enum import StrEnum

from models.common import Role


class Permission(StrEnum):
    PATIENT_READ = "patient.read"
    RECORD_READ = "record.read"
    RECORD_WRITE = "record.write"
    RX_PRESCRIBE = "rx.prescribe"
    RX_REVIEW = "rx.review"
    SCHEDULE_MANAGE = "schedule.manage"
    DOCTOR_MANAGE = "doctor.manage"
    REFUND_APPROVE = "refund.approve"
    RECONCILIATION_READ = "reconciliation.read"
    RECONCILIATION_MANAGE = "reconciliation.manage"
    RECONCILIATION_WRITE_OFF = "reconciliation.write_off"
    AUDIT_READ = "audit.read"
    PERMISSION_MANAGE = "permission.manage"
    ACCOUNT_MANAGE = "account.manage"
    STAFF_REVIEW = "staff.review"
    INSTITUTION_MANAGE = "institution.manage"
    FEEDBACK_MANAGE = "feedback.manage"
    STATISTICS_READ = "statistics.read"
    CATALOG_MAINTAIN = "catalog.maintain"
    CATALOG_APPROVE = "catalog.approve"


PERMISSION_NAMES: dict[Permission, str] = {
    Permission.PATIENT_READ: "查看患者档案",
    Permission.RECORD_READ: "查看病历",
    Permission.RECORD_WRITE: "书写病历",
    Permission.RX_PRESCRIBE: "开具处方",
    Permission.RX_REVIEW: "审核处方",
    Permission.SCHEDULE_MANAGE: "管理排班",
    Permission.DOCTOR_MANAGE: "管理医生信息与收费",
    Permission.REFUND_APPROVE: "审批退款",
    Permission.RECONCILIATION_READ: "查看与导出对账结果",
    Permission.RECONCILIATION_MANAGE: "处理对账差错",
    Permission.RECONCILIATION_WRITE_OFF: "核销坏账",
    Permission.AUDIT_READ: "查询与导出审计日志",
    Permission.PERMISSION_MANAGE: "分配角色与人员权限",
    Permission.ACCOUNT_MANAGE: "管理账号（解锁等）",
    Permission.STAFF_REVIEW: "审核医生、药师注册与资质",
    Permission.INSTITUTION_MANAGE: "医疗机构监管平台登记",
    Permission.FEEDBACK_MANAGE: "处理服务评价与投诉",
    Permission.STATISTICS_READ: "查看统计分析",
    Permission.CATALOG_MAINTAIN: "维护药品目录（提交变更）",
    Permission.CATALOG_APPROVE: "审核发布药品目录变更",
}


class FinanceLevel(StrEnum):
    """Levels of finance staff (财务岗位级别), each a set of the reconciliation permissions. A level is not stored:
    an admin sets it (`PUT /admin/users/{id}/finance-level`) as the person's grants and revocations against their
    role, and the permissions they then hold are what counts."""

    CLERK = "clerk"  # 财务专员: sees the day's results and exports them
    SUPERVISOR = "supervisor"  # 财务主管: also resolves differences and writes off bad debts


FINANCE_LEVEL_NAMES: dict[FinanceLevel, str] = {FinanceLevel.CLERK: "财务专员", FinanceLevel.SUPERVISOR: "财务主管"}

RECONCILIATION_PERMISSIONS = (
    Permission.RECONCILIATION_READ,
    Permission.RECONCILIATION_MANAGE,
    Permission.RECONCILIATION_WRITE_OFF,
)

FINANCE_LEVELS: dict[FinanceLevel, frozenset[Permission]] = {
    FinanceLevel.CLERK: frozenset({Permission.RECONCILIATION_READ}),
    FinanceLevel.SUPERVISOR: frozenset(RECONCILIATION_PERMISSIONS),
}

ROLE_DEFAULTS: dict[Role, frozenset[Permission]] = {
    Role.PATIENT: frozenset(),
    Role.DOCTOR: frozenset(
        {Permission.PATIENT_READ, Permission.RECORD_READ, Permission.RECORD_WRITE, Permission.RX_PRESCRIBE}
    ),
    # The pharmacy team maintains the catalogue; approving changes is granted to senior pharmacists one by one.
    Role.PHARMACIST: frozenset({Permission.RX_REVIEW, Permission.CATALOG_MAINTAIN}),
    Role.ADMIN: frozenset(
        {
            Permission.SCHEDULE_MANAGE,
            Permission.DOCTOR_MANAGE,
            Permission.AUDIT_READ,
            Permission.PERMISSION_MANAGE,
            Permission.ACCOUNT_MANAGE,
            Permission.STAFF_REVIEW,
            Permission.INSTITUTION_MANAGE,
            Permission.FEEDBACK_MANAGE,
            Permission.STATISTICS_READ,
            # Operators look at reconciliation too (e.g. a statement that could not be downloaded).
            Permission.RECONCILIATION_READ,
        }
    ),
    # Finance staff start as clerks; supervisors are made by an admin (FinanceLevel).
    Role.FINANCE: frozenset({Permission.REFUND_APPROVE, *FINANCE_LEVELS[FinanceLevel.CLERK]}),
}

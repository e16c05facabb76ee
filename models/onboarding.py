"""Staff onboarding (8.5.2 doctors, 8.5.3 pharmacists): the application, its documents, the checks and the review.

An applicant (self-registered, or created in a batch by an admin) uploads an ID photo and licences, then submits; the
`Onboarding` flow (`onboard-{staff}`) puts the documents' digests on the evidence ledger, runs the checks, waits for
an admin's review and tells the applicant the result. The review has a deadline: the admins are reminded before it and,
once it passes, the application is escalated to every admin but stays awaiting review. A hospital expects an
applicant who did everything asked to be decided on, not sent back for the hospital's own delay, and never approved
by a clock. Approval creates the doctor or pharmacist profile, which is what lets the account work as staff.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

# 8.5.2.2: a doctor on the platform needs at least three years of independent clinical practice.
MIN_PRACTICE_YEARS = 3


class StaffRole(StrEnum):
    DOCTOR = "doctor"
    PHARMACIST = "pharmacist"


class Affiliation(StrEnum):
    """Where a pharmacist works: the hospital itself, or a partner (8.5.3.2: only after a signed agreement)."""

    HOSPITAL = "hospital"
    THIRD_PARTY = "third_party"


class DocumentKind(StrEnum):
    ID_PHOTO = "id_photo"  # 个人免冠证件照
    ID_CARD = "id_card"  # 身份证
    PRACTICE_LICENCE = "practice_licence"  # 医师执业证书 / 执业药师注册证
    QUALIFICATION = "qualification"  # 医师资格证书 / 药师资格证书
    INSTITUTION_LICENCE = "institution_licence"  # 《医疗机构执业许可证》
    AGREEMENT = "agreement"  # 第三方药师合作协议（已签署）


DOCUMENT_NAMES: dict[DocumentKind, str] = {
    DocumentKind.ID_PHOTO: "免冠证件照",
    DocumentKind.ID_CARD: "身份证",
    DocumentKind.PRACTICE_LICENCE: "执业证书",
    DocumentKind.QUALIFICATION: "资格证书",
    DocumentKind.INSTITUTION_LICENCE: "医疗机构执业许可证",
    DocumentKind.AGREEMENT: "合作协议",
}


def required_documents(role: StaffRole, affiliation: Affiliation) -> list[DocumentKind]:
    """What must be uploaded before an application can be submitted."""
    needed = [DocumentKind.ID_PHOTO, DocumentKind.PRACTICE_LICENCE]
    if role is StaffRole.DOCTOR:
        needed.append(DocumentKind.QUALIFICATION)
    if role is StaffRole.PHARMACIST and affiliation is Affiliation.THIRD_PARTY:
        needed.append(DocumentKind.AGREEMENT)
    return needed


class ApplicationStatus(StrEnum):
    DRAFT = "draft"  # documents being uploaded
    CHECKING = "checking"  # submitted: the flow runs the checks
    AWAITING_REVIEW = "awaiting_review"
    APPROVED = "approved"
    REJECTED = "rejected"


# An applicant may upload and submit (again) only in these states.
OPEN_STATUSES = frozenset({ApplicationStatus.DRAFT, ApplicationStatus.REJECTED})


class OnboardingInput(BaseModel):
    staff_id: str
    # Which submission of the application this run checks (1, 2, … after a rejection); part of idempotency keys.
    attempt: int = Field(ge=1)
    # Seconds the admins have for the review once the checks pass (None: no deadline), and when to remind them,
    # in seconds before that deadline (settings.staff_review_window_s, staff_review_reminders_s).
    review_window_s: int | None = Field(default=None, gt=0)
    review_reminders_s: list[int] = []


class ApplicationFacts(BaseModel):
    """What the flow needs of the application: no names, phone or ID numbers (activities read those themselves)."""

    staff_id: str
    role: StaffRole
    affiliation: Affiliation
    licence_date: date
    documents: list[DocumentKind]


class PractitionerRecord(BaseModel):
    """The medical-practitioner registry's answer (国家卫健委 医师执业注册信息) for one licence number."""

    found: bool
    # The registered name is the applicant's (the registry compares; it never sends the name back).
    name_matches: bool = False
    status: str | None = Field(default=None, description="valid, suspended, revoked")
    practice_category: str | None = None
    practice_scope: str | None = None
    institution: str | None = None
    first_registered_on: date | None = None
    reason: str | None = None


class CheckOutcome(BaseModel):
    """One check of the application; `detail` is zh-CN for the reviewer and, when it fails, the applicant."""

    code: str
    passed: bool
    detail: str


class StaffReview(BaseModel):
    """An admin's decision (an Update). A rejection needs its reason; the applicant is told it."""

    reviewer_user_id: str = Field(min_length=1, max_length=40)
    approve: bool
    reason: str | None = Field(default=None, max_length=500)


class OnboardingState(BaseModel):
    staff_id: str
    attempt: int
    status: ApplicationStatus
    checks: list[CheckOutcome] = []
    # Ledger sequence numbers of the documents' digests.
    evidence_seqs: list[int] = []
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    # When the review is due, and when it was escalated for being overdue (it stays awaiting review).
    review_due_at: datetime | None = None
    escalated_at: datetime | None = None


class OnboardingDecision(BaseModel):
    """What the flow records at the end: approved (the account is activated) or rejected, by whom and why."""

    staff_id: str
    attempt: int
    approved: bool
    decided_by: str
    reason: str | None = None


def full_years(since: date, today: date) -> int:
    """Whole years from `since` to `today` (a birthday-style count: the anniversary day completes the year)."""
    return today.year - since.year - ((today.month, today.day) < (since.month, since.day))


def assess(facts: ApplicationFacts, registry: PractitionerRecord | None, today: date) -> list[CheckOutcome]:
    """The automatic checks: documents complete, and for doctors the registry entry and three years of practice
    (counted from the registry's first registration when it tells it, else from the licence's date)."""
    missing = [kind for kind in required_documents(facts.role, facts.affiliation) if kind not in facts.documents]
    checks = [
        CheckOutcome(
            code="DOCUMENTS_COMPLETE",
            passed=not missing,
            detail="材料齐全" if not missing else "缺少材料：" + "、".join(DOCUMENT_NAMES[kind] for kind in missing),
        )
    ]
    if facts.role is StaffRole.PHARMACIST and facts.affiliation is Affiliation.THIRD_PARTY:
        signed = DocumentKind.AGREEMENT in facts.documents
        checks.append(
            CheckOutcome(
                code="AGREEMENT_SIGNED",
                passed=signed,
                detail="已提交签署的合作协议" if signed else "第三方机构药师须先签署合作协议",
            )
        )
    if facts.role is StaffRole.DOCTOR:
        checks.append(_registry_check(registry))
        since = (registry.first_registered_on if registry is not None else None) or facts.licence_date
        years = full_years(since, today)
        checks.append(
            CheckOutcome(
                code="PRACTICE_YEARS",
                passed=years >= MIN_PRACTICE_YEARS,
                detail=f"自 {since.isoformat()} 起独立执业 {max(years, 0)} 年"
                + ("" if years >= MIN_PRACTICE_YEARS else f"，不足 {MIN_PRACTICE_YEARS} 年"),
            )
        )
    return checks


def _registry_check(registry: PractitionerRecord | None) -> CheckOutcome:
    if registry is None or not registry.found:
        reason = (registry.reason if registry is not None else None) or "未查询到执业注册信息"
        return CheckOutcome(code="REGISTRY", passed=False, detail=f"医师执业注册查询：{reason}")
    if not registry.name_matches:
        return CheckOutcome(code="REGISTRY", passed=False, detail="医师执业注册查询：注册姓名与申请人不一致")
    if registry.status != "valid":
        return CheckOutcome(code="REGISTRY", passed=False, detail=f"医师执业注册状态异常（{registry.status}）")
    where = "、".join(part for part in (registry.practice_category, registry.institution) if part)
    return CheckOutcome(code="REGISTRY", passed=True, detail="医师执业注册有效" + (f"（{where}）" if where else ""))

"""Staff applications (8.5.2 doctors, 8.5.3 pharmacists): accounts with an application behind them, the documents
the applicant uploads, submitting for review and the admin's decision.

An application's account signs in like any other, but until the application is approved its sessions reach only the
application (api/auth.py `APPLICANT_SCOPE`). Submitting starts the `Onboarding` flow, which checks, waits for an
admin's review and, on approval, creates the doctor's or pharmacist's profile. Nothing here is committed unless said.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from anyio import to_thread
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from api.auth import Actor
from api.errors import Problem
from api.identity import normalize_id_card
from api.schemas.staff import AdminApplicationOut, ApplicationOut, ApplicationSummary, DocumentOut, SubmitOut
from api.services.sealed_files import MIB, FileRule, seal_file
from api.services.temporal_calls import workflow_call
from core.crypto.sm import FieldCipher, mask
from core.password_policy import MESSAGES, password_violations
from core.passwords import hash_password
from core.settings import Settings
from models.onboarding import (
    DOCUMENT_NAMES,
    OPEN_STATUSES,
    Affiliation,
    ApplicationStatus,
    CheckOutcome,
    DocumentKind,
    OnboardingInput,
    OnboardingState,
    StaffReview,
    StaffRole,
    required_documents,
)
from models.tables import Department, StaffApplication, StaffDocument, User
from workflows.onboarding import OnboardingWorkflow, onboarding_workflow_id

DOCUMENT_RULE = FileRule("证件或证书文件", 5 * MIB, frozenset({"image/jpeg", "image/png", "application/pdf"}))
# The largest upload request: the biggest document plus room for the multipart framing and the kind field.
MAX_DOCUMENT_UPLOAD = DOCUMENT_RULE.limit + 64 * 1024
# The associated data a document's bytes are sealed under: bytes copied into another row do not decrypt.
DOCUMENT_COLUMN = "staff_documents.data_enc"
# FieldCipher column names (the phone's is the patients', so the notifier reads both alike).
ID_CARD_COLUMN, PHONE_COLUMN = "id_card", "phone"


@dataclass
class Applicant:
    """A new application as given (self-registration or one imported row), before the database has a say."""

    role: StaffRole
    username: str
    password: str
    name: str
    id_card_no: str
    phone: str
    licence_no: str
    licence_date: date
    department_id: str | None = None
    title: str | None = None
    institution: str | None = None
    affiliation: Affiliation = Affiliation.HOSPITAL


@dataclass
class Fault:
    """What is wrong with an applicant: the field, a stable code and a zh-CN message."""

    field: str
    code: str
    message: str


@dataclass
class Reference:
    """What the database says about a batch of applicants: names taken, departments known, people applied."""

    taken_usernames: set[str] = field(default_factory=set)
    departments: set[str] = field(default_factory=set)
    applied_id_cards: set[str] = field(default_factory=set)


def applicant_faults(applicant: Applicant, today: date) -> list[Fault]:
    """Everything checkable without the database."""
    faults = []
    if normalize_id_card(applicant.id_card_no, today) is None:
        faults.append(Fault("id_card_no", "INVALID_ID_CARD", "身份证号码无效，请核对最后一位校验码"))
    faults += [
        Fault("password", f"password.{rule}", MESSAGES[rule])
        for rule in password_violations(applicant.password, applicant.username)
    ]
    if applicant.licence_date > today:
        faults.append(Fault("licence_date", "LICENCE_DATE_IN_FUTURE", "执业证书日期不能晚于今天"))
    if applicant.role is StaffRole.DOCTOR:
        if not applicant.department_id:
            faults.append(Fault("department_id", "DEPARTMENT_REQUIRED", "医生须填写执业科室"))
        if applicant.affiliation is not Affiliation.HOSPITAL:
            faults.append(Fault("affiliation", "AFFILIATION_NOT_ALLOWED", "医生须在本院执业注册"))
    elif applicant.department_id or applicant.title:
        faults.append(Fault("department_id", "NOT_FOR_PHARMACISTS", "药师无需填写科室和职称"))
    return faults


async def load_reference(session: AsyncSession, cipher: FieldCipher, applicants: Sequence[Applicant]) -> Reference:
    usernames = {applicant.username for applicant in applicants}
    departments = {applicant.department_id for applicant in applicants if applicant.department_id}
    indexes = {_id_card_index(cipher, applicant.id_card_no) for applicant in applicants}
    return Reference(
        taken_usernames=set(
            (await session.execute(select(col(User.username)).where(col(User.username).in_(usernames)))).scalars()
        ),
        departments=set(
            (await session.execute(select(col(Department.id)).where(col(Department.id).in_(departments)))).scalars()
        ),
        applied_id_cards=set(
            (
                await session.execute(
                    select(col(StaffApplication.id_card_index)).where(col(StaffApplication.id_card_index).in_(indexes))
                )
            ).scalars()
        ),
    )


def reference_faults(applicant: Applicant, ref: Reference, cipher: FieldCipher) -> list[Fault]:
    faults = []
    if applicant.username in ref.taken_usernames:
        faults.append(Fault("username", "USERNAME_TAKEN", f"用户名“{applicant.username}”已被使用"))
    if applicant.department_id and applicant.department_id not in ref.departments:
        faults.append(Fault("department_id", "UNKNOWN_DEPARTMENT", f"科室“{applicant.department_id}”不存在"))
    if _id_card_index(cipher, applicant.id_card_no) in ref.applied_id_cards:
        faults.append(Fault("id_card_no", "APPLICATION_EXISTS", "该身份证号码已有注册申请，请直接登录"))
    return faults


def _id_card_index(cipher: FieldCipher, id_card_no: str) -> str:
    return cipher.blind_index(ID_CARD_COLUMN, id_card_no.strip().upper())


def initial_password() -> str:
    """A random password meeting the complexity rules, for an account an admin creates."""
    return f"{secrets.token_urlsafe(10)}#{secrets.randbelow(10)}aA"


async def add_applications(
    session: AsyncSession,
    cipher: FieldCipher,
    applicants: Sequence[Applicant],
    *,
    source: str,
    created_by: str | None,
    initial_passwords: bool = False,
) -> list[StaffApplication]:
    """Add the accounts and their draft applications to the session (checked already; not committed).
    `initial_passwords`: the passwords were chosen for the people (batch creation), who must change them first."""
    # scrypt is CPU-bound and deliberately slow: off the event loop.
    hashes = await to_thread.run_sync(lambda: [hash_password(applicant.password) for applicant in applicants])
    rows = []
    for applicant, password_hash in zip(applicants, hashes, strict=True):
        staff_id = f"stf-{uuid.uuid4().hex[:12]}"
        user_id = f"u-{uuid.uuid4().hex[:16]}"
        id_card = applicant.id_card_no.strip().upper()
        session.add(
            User(
                id=user_id,
                username=applicant.username,
                password_hash=password_hash,
                role=str(applicant.role),
                display_name=applicant.name,
                must_change_password=initial_passwords,
            )
        )
        row = StaffApplication(
            id=staff_id,
            user_id=user_id,
            role=str(applicant.role),
            affiliation=str(applicant.affiliation),
            name=applicant.name,
            id_card_enc=cipher.encrypt(ID_CARD_COLUMN, id_card) or "",
            id_card_index=_id_card_index(cipher, id_card),
            phone_enc=cipher.encrypt(PHONE_COLUMN, applicant.phone) or "",
            department_id=applicant.department_id,
            title=applicant.title or ("医师" if applicant.role is StaffRole.DOCTOR else None),
            licence_no=applicant.licence_no,
            licence_date=applicant.licence_date,
            institution=applicant.institution,
            source=source,
            created_by=created_by,
        )
        rows.append(row)
    try:
        await session.flush()  # the users first: the applications refer to them
        session.add_all(rows)
        await session.flush()
    except IntegrityError as exc:
        # Checked before, so only a registration racing this one gets here.
        raise Problem(
            409, "APPLICATION_CONFLICT", "无法注册", "用户名或身份证号码刚被另一注册申请使用，请核对后重试。"
        ) from exc
    return rows


# --- the applicant's own application ------------------------------------------------------------------------------


async def application_of(session: AsyncSession, actor: Actor) -> StaffApplication:
    row = (
        await session.execute(select(StaffApplication).where(col(StaffApplication.user_id) == actor.user_id))
    ).scalar_one_or_none()
    if row is None:
        raise Problem(404, "NO_APPLICATION", "没有注册申请", "该账号没有医生或药师注册申请。")
    return row


async def documents_of(session: AsyncSession, staff_id: str) -> list[StaffDocument]:
    return list(
        (
            await session.execute(
                select(StaffDocument)
                .where(col(StaffDocument.staff_id) == staff_id)
                .order_by(col(StaffDocument.created_at), col(StaffDocument.id))
            )
        ).scalars()
    )


def _required(row: StaffApplication) -> list[DocumentKind]:
    return required_documents(StaffRole(row.role), Affiliation(row.affiliation))


def applicant_view(row: StaffApplication, documents: Sequence[StaffDocument]) -> ApplicationOut:
    kinds = {DocumentKind(document.kind) for document in documents}
    required = _required(row)
    return ApplicationOut(
        staff_id=row.id,
        role=StaffRole(row.role),
        status=ApplicationStatus(row.status),
        affiliation=Affiliation(row.affiliation),
        required_documents=required,
        missing_documents=[kind for kind in required if kind not in kinds],
        documents=[
            DocumentOut.model_validate(document, from_attributes=True)
            for document in documents  # metadata only: never the bytes
        ],
        checks=[CheckOutcome.model_validate(check) for check in row.checks],
        reason=row.reason,
        decided_at=row.decided_at,
        submitted_at=row.submitted_at,
    )


def _refuse_unless_open(row: StaffApplication) -> None:
    if ApplicationStatus(row.status) not in OPEN_STATUSES:
        raise Problem(
            409,
            "APPLICATION_NOT_OPEN",
            "申请当前不可修改",
            "申请审核中或已通过，不能再上传材料或重复提交。",
            current_status=row.status,
        )


async def add_document(
    session: AsyncSession,
    key_hex: str,
    row: StaffApplication,
    actor: Actor,
    kind: DocumentKind,
    content_type: str,
    data: bytes,
) -> StaffDocument:
    """Check and seal an uploaded document (413/415/422 as for any upload) and add it (committed by the caller)."""
    _refuse_unless_open(row)
    document_id = f"sdoc-{uuid.uuid4().hex}"
    sealed = seal_file(key_hex, f"{DOCUMENT_COLUMN}:{document_id}", DOCUMENT_RULE, content_type, data)
    document = StaffDocument(
        id=document_id,
        staff_id=row.id,
        kind=str(kind),
        content_type=sealed.content_type,
        size_bytes=sealed.size_bytes,
        sm3=sealed.sm3,
        data_enc=sealed.data_enc,
        uploaded_by=actor.user_id,
    )
    session.add(document)
    await session.flush()
    return document


async def submit(session: AsyncSession, temporal: Client, settings: Settings, row: StaffApplication) -> SubmitOut:
    """Submit for review (again after a rejection) and start the flow, with the review deadline the settings give;
    commits. Asking again while the checks are still to start (the flow could not be reached) starts them: the same
    submission, not a new one."""
    if ApplicationStatus(row.status) is not ApplicationStatus.CHECKING:
        _refuse_unless_open(row)
        uploaded = {DocumentKind(document.kind) for document in await documents_of(session, row.id)}
        missing = [kind for kind in _required(row) if kind not in uploaded]
        if missing:
            raise Problem(
                422,
                "DOCUMENTS_MISSING",
                "材料不全",
                "请先上传：" + "、".join(DOCUMENT_NAMES[kind] for kind in missing) + "。",
                missing=[str(kind) for kind in missing],
            )
        row.attempt += 1
        row.status = str(ApplicationStatus.CHECKING)
        row.submitted_at = datetime.now(UTC)
        row.checks, row.reason, row.decided_by, row.decided_at = [], None, None, None
        row.review_due_at = row.escalated_at = None
        await session.commit()
        await session.refresh(row)
    workflow_id = onboarding_workflow_id(row.id)
    await temporal.start_workflow(
        OnboardingWorkflow.run,
        OnboardingInput(
            staff_id=row.id,
            attempt=row.attempt,
            review_window_s=settings.staff_review_window_s,
            review_reminders_s=settings.staff_review_reminders_s,
        ),
        id=workflow_id,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=settings.task_queue,
    )
    return SubmitOut(
        staff_id=row.id, status=ApplicationStatus(row.status), attempt=row.attempt, workflow_id=workflow_id
    )


# --- admins ---------------------------------------------------------------------------------------------------------


async def admin_view(session: AsyncSession, cipher: FieldCipher, staff_id: str) -> AdminApplicationOut:
    row = await session.get(StaffApplication, staff_id)
    if row is None:
        raise Problem(404, "NOT_FOUND", "未找到", "注册申请不存在。")
    user = await session.get(User, row.user_id)
    assert user is not None  # a foreign key
    own = applicant_view(row, await documents_of(session, staff_id))
    return AdminApplicationOut(
        **own.model_dump(),
        user_id=row.user_id,
        username=user.username,
        name=row.name,
        id_card_masked=mask(cipher.decrypt(ID_CARD_COLUMN, row.id_card_enc)) or "",
        phone_masked=mask(cipher.decrypt(PHONE_COLUMN, row.phone_enc)) or "",
        department_id=row.department_id,
        title=row.title,
        licence_no=row.licence_no,
        licence_date=row.licence_date,
        institution=row.institution,
        source="import" if row.source == "import" else "self",
        attempt=row.attempt,
        decided_by=row.decided_by,
        review_due_at=row.review_due_at,
        escalated_at=row.escalated_at,
    )


async def list_applications(
    session: AsyncSession, status: ApplicationStatus | None, role: StaffRole | None, limit: int, offset: int
) -> tuple[list[ApplicationSummary], int]:
    """Newest submission first (drafts, never submitted, last)."""
    where = []
    if status is not None:
        where.append(col(StaffApplication.status) == str(status))
    if role is not None:
        where.append(col(StaffApplication.role) == str(role))
    total = (await session.execute(select(func.count()).select_from(StaffApplication).where(*where))).scalar_one()
    rows = (
        await session.execute(
            select(StaffApplication)
            .where(*where)
            .order_by(
                col(StaffApplication.submitted_at).desc().nulls_last(),
                col(StaffApplication.created_at).desc(),
                col(StaffApplication.id),
            )
            .limit(limit)
            .offset(offset)
        )
    ).scalars()
    items = [
        ApplicationSummary(
            staff_id=row.id,
            user_id=row.user_id,
            role=StaffRole(row.role),
            name=row.name,
            status=ApplicationStatus(row.status),
            source="import" if row.source == "import" else "self",
            submitted_at=row.submitted_at,
            created_at=row.created_at,
            review_due_at=row.review_due_at,
            escalated_at=row.escalated_at,
        )
        for row in rows
    ]
    return items, total


async def document(session: AsyncSession, staff_id: str, document_id: str) -> StaffDocument:
    found = await session.get(StaffDocument, document_id)
    if found is None or found.staff_id != staff_id:
        raise Problem(404, "NOT_FOUND", "未找到", "材料不存在。")
    return found


async def review(temporal: Client, actor: Actor, staff_id: str, approve: bool, reason: str | None) -> OnboardingState:
    """The admin's decision, through the flow (409 when the application is not awaiting review)."""
    handle = temporal.get_workflow_handle(onboarding_workflow_id(staff_id))
    state: OnboardingState = await workflow_call(
        handle.execute_update(
            OnboardingWorkflow.review, StaffReview(reviewer_user_id=actor.user_id, approve=approve, reason=reason)
        ),
        missing="该申请尚未提交审核",
    )
    return state

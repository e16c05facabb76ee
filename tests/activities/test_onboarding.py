"""Onboarding steps against PostgreSQL, the evidence ledger and the sandbox practitioner registry: the application's
facts, its documents' digests on the ledger (once), the registry asked with the decrypted identity, the checks and
the decision recorded; approval creates the profile and ends the applicant's sessions; the applicant hears by SMS."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import col
from temporalio.exceptions import ApplicationError

from activities.adapters.practitioner.sandbox import SandboxPractitionerRegistry, sandbox_licence
from activities.notices import NoticeActivities
from activities.onboarding import DOCUMENT_EVIDENCE, OnboardingActivities
from api.services.staff_applications import Applicant, add_applications
from core.crypto.sm import FieldCipher, sm3_hex
from core.ledger.service import EvidenceLedger
from core.passwords import new_token, token_digest
from models import idcard
from models.common import Channel
from models.notify import Notice
from models.onboarding import (
    ApplicationStatus,
    CheckOutcome,
    DocumentKind,
    OnboardingDecision,
    OnboardingInput,
    OnboardingState,
    StaffRole,
)
from models.tables import AccessToken, Doctor, LedgerEntry, Pharmacist, StaffApplication, StaffDocument
from tests.api.helpers import make_department, unique


class Texts:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None, str]] = []

    async def send(
        self, *, idempotency_key: str, channel: Channel, phone: str | None, user_id: str, title: str, body: str
    ) -> str:
        self.sent.append((user_id, phone, body))
        return idempotency_key


@pytest.fixture
def cipher(settings) -> FieldCipher:  # type: ignore[no-untyped-def]
    return FieldCipher(settings.pii_key, settings.blind_index_key)


@pytest.fixture
def registry(sessions, settings) -> SandboxPractitionerRegistry:  # type: ignore[no-untyped-def]
    return SandboxPractitionerRegistry(sessions, settings)


@pytest.fixture
def steps(sessions, cipher, registry) -> OnboardingActivities:  # type: ignore[no-untyped-def]
    return OnboardingActivities(sessions, cipher, registry, EvidenceLedger(sessions))


async def _doctor(sessions, cipher: FieldCipher, **overrides: object) -> StaffApplication:  # type: ignore[no-untyped-def]
    fields: dict[str, object] = {
        "role": StaffRole.DOCTOR,
        "username": unique("dr"),
        "password": "Qihuang#test-2026",
        "name": "李时珍",
        "id_card_no": idcard.random_valid(),
        "phone": "13912345678",
        "licence_no": sandbox_licence(date(2016, 4, 1), serial=int(datetime.now(UTC).timestamp()) % 999_999 + 1),
        "licence_date": date(2016, 4, 1),
        "department_id": await make_department(sessions),
        "title": "主治医师",
        **overrides,
    }
    async with sessions() as session, session.begin():
        [row] = await add_applications(session, cipher, [Applicant(**fields)], source="self", created_by=None)  # type: ignore[arg-type]
        row.attempt, row.status = 1, str(ApplicationStatus.CHECKING)
    return row


async def _document(sessions, staff_id: str, user_id: str, kind: DocumentKind, data: bytes) -> str:  # type: ignore[no-untyped-def]
    document_id = unique("sdoc")
    async with sessions() as session, session.begin():
        session.add(
            StaffDocument(
                id=document_id,
                staff_id=staff_id,
                kind=str(kind),
                content_type="image/png",
                size_bytes=len(data),
                sm3=sm3_hex(data),
                data_enc=b"sealed",
                uploaded_by=user_id,
            )
        )
    return document_id


async def test_facts_documents_on_the_ledger_and_the_registry(sessions, cipher, steps) -> None:  # type: ignore[no-untyped-def]
    row = await _doctor(sessions, cipher)
    run = OnboardingInput(staff_id=row.id, attempt=1)
    photo = await _document(sessions, row.id, row.user_id, DocumentKind.ID_PHOTO, b"photo " + row.id.encode())
    licence = await _document(
        sessions, row.id, row.user_id, DocumentKind.PRACTICE_LICENCE, b"licence " + row.id.encode()
    )

    facts = await steps.application_facts(run)
    assert (facts.role, facts.licence_date) == (StaffRole.DOCTOR, date(2016, 4, 1))
    assert facts.documents == sorted([DocumentKind.ID_PHOTO, DocumentKind.PRACTICE_LICENCE])

    seqs = await steps.put_documents_on_record(run)
    assert await steps.put_documents_on_record(run) == seqs  # a retried step adds no second leaf
    async with sessions() as session:
        entries = (await session.execute(select(LedgerEntry).where(col(LedgerEntry.seq).in_(seqs)))).scalars().all()
        documents = {
            d.id: d
            for d in (
                await session.execute(select(StaffDocument).where(col(StaffDocument.staff_id) == row.id))
            ).scalars()
        }
    assert {(e.kind, e.subject, e.digest.hex()) for e in entries} == {
        (DOCUMENT_EVIDENCE, f"staff_document:{photo}", documents[photo].sm3),
        (DOCUMENT_EVIDENCE, f"staff_document:{licence}", documents[licence].sm3),
    }
    assert sorted(d.ledger_seq for d in documents.values() if d.ledger_seq is not None) == sorted(seqs)

    record = await steps.lookup_practitioner(run)
    assert record.found and record.name_matches and record.first_registered_on == date(2016, 4, 1)


async def test_a_superseded_submission_is_refused(sessions, cipher, steps) -> None:  # type: ignore[no-untyped-def]
    row = await _doctor(sessions, cipher)
    with pytest.raises(ApplicationError) as refused:
        await steps.application_facts(OnboardingInput(staff_id=row.id, attempt=2))
    assert refused.value.type == "SUBMISSION_SUPERSEDED" and refused.value.non_retryable


async def test_approval_creates_the_doctor_and_ends_the_applicant_sessions(sessions, cipher, steps) -> None:  # type: ignore[no-untyped-def]
    row = await _doctor(sessions, cipher)
    token = new_token()
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        session.add(
            AccessToken(
                token_hash=token_digest(token),
                user_id=row.user_id,
                expires_at=now + timedelta(hours=1),
                scope="applicant",
            )
        )
    checks = [CheckOutcome(code="REGISTRY", passed=True, detail="医师执业注册有效")]
    state = OnboardingState(staff_id=row.id, attempt=1, status=ApplicationStatus.AWAITING_REVIEW, checks=checks)
    await steps.record_checks(state)
    approval = OnboardingDecision(staff_id=row.id, attempt=1, approved=True, decided_by="u-admin")
    await steps.finish_onboarding(approval)
    await steps.finish_onboarding(approval)  # a retried step creates nothing twice

    async with sessions() as session:
        stored = await session.get(StaffApplication, row.id)
        doctor = await session.get(Doctor, row.id)
        ended = await session.get(AccessToken, token_digest(token))
    assert stored is not None and stored.status == "approved" and stored.decided_by == "u-admin"
    assert stored.checks == [check.model_dump() for check in checks]
    assert doctor is not None
    assert (doctor.user_id, doctor.name, doctor.title, doctor.department_id, doctor.licence_no) == (
        row.user_id,
        "李时珍",
        "主治医师",
        row.department_id,
        row.licence_no,
    )
    assert ended is not None and ended.revoked_at is not None


async def test_a_rejection_and_a_stale_decision(sessions, cipher, steps) -> None:  # type: ignore[no-untyped-def]
    row = await _doctor(sessions, cipher, role=StaffRole.PHARMACIST, department_id=None, title=None)
    # A decision about an earlier submission changes nothing.
    await steps.finish_onboarding(OnboardingDecision(staff_id=row.id, attempt=7, approved=True, decided_by="u-x"))
    await steps.finish_onboarding(
        OnboardingDecision(staff_id=row.id, attempt=1, approved=False, decided_by="system", reason="缺少材料：执业证书")
    )
    async with sessions() as session:
        stored = await session.get(StaffApplication, row.id)
        pharmacist = await session.get(Pharmacist, row.id)
    assert stored is not None and (stored.status, stored.reason) == ("rejected", "缺少材料：执业证书")
    assert pharmacist is None


async def test_the_applicant_is_texted_at_the_phone_of_the_application(sessions, cipher) -> None:  # type: ignore[no-untyped-def]
    row = await _doctor(sessions, cipher)
    texts = Texts()
    notices = NoticeActivities(sessions, cipher, texts, (Channel.APP, Channel.SMS))  # type: ignore[arg-type]
    reached = await notices.send_notice(
        Notice(
            key=unique("onboard"),
            user_ref=f"applicant:{row.id}",
            template="onboarding_rejected",
            params={"role": "医生", "reason": "执业证书照片不清晰"},
        )
    )
    assert reached == 1
    # Once per channel (app push and SMS), to the phone given with the application.
    assert [(user, phone) for user, phone, _ in texts.sent] == [(row.user_id, "13912345678")] * 2
    assert all("执业证书照片不清晰" in body for _, _, body in texts.sent)

"""Staff onboarding steps (8.5.2, 8.5.3): read the application, put its documents on record, ask the practitioner
registry, record the checks and the decision. Approval creates the doctor's or pharmacist's profile: that is what
makes the account work as staff (until then its sign-ins only reach the application, see api/auth.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.adapters.practitioner import PractitionerRegistry
from activities.errors import business_error
from core.crypto.sm import FieldCipher
from core.ledger.service import EvidenceLedger
from models.ledger import Evidence
from models.onboarding import (
    Affiliation,
    ApplicationFacts,
    ApplicationStatus,
    DocumentKind,
    OnboardingDecision,
    OnboardingInput,
    OnboardingState,
    PractitionerRecord,
    StaffRole,
)
from models.tables import AccessToken, Doctor, Pharmacist, StaffApplication, StaffDocument

# What the ledger calls an uploaded staff document (models.ledger.Evidence.kind).
DOCUMENT_EVIDENCE = "staff.document"


class OnboardingActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cipher: FieldCipher,
        registry: PractitionerRegistry,
        ledger: EvidenceLedger,
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._registry = registry
        self._ledger = ledger

    async def _application(self, session: AsyncSession, run: OnboardingInput) -> StaffApplication:
        row = await session.get(StaffApplication, run.staff_id)
        if row is None or row.attempt != run.attempt:
            # Submitted again since: that submission's run decides.
            raise business_error("SUBMISSION_SUPERSEDED", "注册申请已重新提交")
        return row

    @activity.defn
    async def application_facts(self, run: OnboardingInput) -> ApplicationFacts:
        async with self._sessions() as session:
            row = await self._application(session, run)
            kinds = (
                await session.execute(
                    select(col(StaffDocument.kind)).where(col(StaffDocument.staff_id) == run.staff_id).distinct()
                )
            ).scalars()
            return ApplicationFacts(
                staff_id=row.id,
                role=StaffRole(row.role),
                affiliation=Affiliation(row.affiliation),
                licence_date=row.licence_date,
                documents=sorted(DocumentKind(kind) for kind in kinds),
            )

    @activity.defn
    async def put_documents_on_record(self, run: OnboardingInput) -> list[int]:
        """Append each document's SM3 digest to the evidence ledger (once: the ledger dedupes) and note where it went.
        Returns the ledger sequence numbers, oldest document first."""
        async with self._sessions() as session:
            documents = (
                await session.execute(
                    select(col(StaffDocument.id), col(StaffDocument.sm3))
                    .where(col(StaffDocument.staff_id) == run.staff_id)
                    .order_by(col(StaffDocument.created_at), col(StaffDocument.id))
                )
            ).all()
        seqs = []
        for document_id, digest in documents:
            receipt = await self._ledger.append(
                Evidence(kind=DOCUMENT_EVIDENCE, subject=f"staff_document:{document_id}", digest=digest)
            )
            seqs.append(receipt.seq)
            async with self._sessions() as session, session.begin():
                await session.execute(
                    update(StaffDocument).where(col(StaffDocument.id) == document_id).values(ledger_seq=receipt.seq)
                )
        return seqs

    @activity.defn
    async def lookup_practitioner(self, run: OnboardingInput) -> PractitionerRecord:
        async with self._sessions() as session:
            row = await self._application(session, run)
        return await self._registry.lookup(
            idempotency_key=f"onboard-{run.staff_id}:{run.attempt}:registry",
            name=row.name,
            licence_no=row.licence_no,
            id_card_no=self._cipher.decrypt("id_card", row.id_card_enc) or "",
        )

    @activity.defn
    async def record_checks(self, state: OnboardingState) -> None:
        """The checks' outcomes and where the application now stands (awaiting review, or rejected by them), with
        when the review is due and whether it was escalated for being overdue. A rejection's reason is written with
        its status, so nobody reads a rejection without its why."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(StaffApplication)
                .where(col(StaffApplication.id) == state.staff_id, col(StaffApplication.attempt) == state.attempt)
                .values(
                    status=str(state.status),
                    checks=[check.model_dump() for check in state.checks],
                    decided_by=state.decided_by,
                    reason=state.reason,
                    review_due_at=state.review_due_at,
                    escalated_at=state.escalated_at,
                )
            )

    @activity.defn
    async def finish_onboarding(self, decision: OnboardingDecision) -> None:
        """Record the decision. Approval creates the profile (once) and ends the applicant's sign-ins, so the next
        one gets a staff session."""
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            row = await session.get(StaffApplication, decision.staff_id, with_for_update=True)
            if row is None or row.attempt != decision.attempt:
                return
            row.status = str(ApplicationStatus.APPROVED if decision.approved else ApplicationStatus.REJECTED)
            row.decided_by, row.decided_at, row.reason = decision.decided_by, now, decision.reason
            if not decision.approved:
                return
            if row.role == StaffRole.DOCTOR and await session.get(Doctor, row.id) is None:
                assert row.department_id is not None  # a check constraint
                session.add(
                    Doctor(
                        id=row.id,
                        user_id=row.user_id,
                        name=row.name,
                        title=row.title or "医师",
                        department_id=row.department_id,
                        licence_no=row.licence_no,
                        # The HIS's code for the doctor is the hospital's to set (admin doctor management).
                        his_code=row.id[:32],
                    )
                )
            if row.role == StaffRole.PHARMACIST and await session.get(Pharmacist, row.id) is None:
                session.add(Pharmacist(id=row.id, user_id=row.user_id, name=row.name, licence_no=row.licence_no))
            await session.execute(
                update(AccessToken)
                .where(col(AccessToken.user_id) == row.user_id, col(AccessToken.revoked_at).is_(None))
                .values(revoked_at=now)
            )

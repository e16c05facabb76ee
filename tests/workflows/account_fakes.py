"""Fake activities for the account flows (staff onboarding, institution registration and re-verification, real-name
verification with a liveness check, security housekeeping), registered under the real names on a private queue pair per test, so the
real workflows run on the real dev server without PostgreSQL or adapters. The recorders use them too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from models.identity import IdentityCheckInput, LivenessResult, RealNameResult
from models.institution import (
    InstitutionInput,
    InstitutionRecord,
    InstitutionState,
    InstitutionStatus,
    RegistrationReceipt,
    RegistrationState,
    RegistrationStatus,
    ReverificationCheck,
    ReverificationResult,
    Verification,
    status_after_reverification,
)
from models.notify import Notice
from models.onboarding import (
    Affiliation,
    ApplicationFacts,
    DocumentKind,
    OnboardingDecision,
    OnboardingInput,
    OnboardingState,
    PractitionerRecord,
    StaffRole,
)
from workflows.housekeeping import SecurityHousekeepingWorkflow
from workflows.identity import IdentityVerificationWorkflow
from workflows.institution import InstitutionRegistrationWorkflow, InstitutionReverificationWorkflow
from workflows.onboarding import OnboardingWorkflow

DOCTOR_DOCUMENTS = [DocumentKind.ID_PHOTO, DocumentKind.PRACTICE_LICENCE, DocumentKind.QUALIFICATION]


class Notices:
    def __init__(self) -> None:
        self.notices: list[Notice] = []

    @activity.defn(name="send_notice")
    async def send_notice(self, notice: Notice) -> int:
        self.notices.append(notice)
        return 1


@asynccontextmanager
async def workers(
    client: Client, queue: str, workflows: Sequence[type], local: Sequence[Any], integration: Sequence[Any]
) -> AsyncIterator[None]:
    """The flows and their database steps on `queue`, outside calls on `<queue>-integrations`, as the worker runs them."""
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(
            Worker(client, task_queue=queue, workflows=list(workflows), activities=list(local))
        )
        if integration:
            await stack.enter_async_context(
                Worker(client, task_queue=f"{queue}-integrations", activities=list(integration))
            )
        yield


class OnboardingWorld(Notices):
    def __init__(self) -> None:
        super().__init__()
        self.facts = ApplicationFacts(
            staff_id="stf-recorded",
            role=StaffRole.DOCTOR,
            affiliation=Affiliation.HOSPITAL,
            licence_date=date(2015, 3, 1),
            documents=DOCTOR_DOCUMENTS,
        )
        self.registry = PractitionerRecord(
            found=True,
            name_matches=True,
            status="valid",
            practice_category="中医",
            first_registered_on=date(2015, 3, 1),
        )
        self.lookups = 0
        # When set, the registry look-up waits for it: the flow is held in its checks.
        self.gate: asyncio.Event | None = None
        self.checks: list[OnboardingState] = []
        self.decisions: list[OnboardingDecision] = []

    @activity.defn(name="application_facts")
    async def application_facts(self, run: OnboardingInput) -> ApplicationFacts:
        return self.facts.model_copy(update={"staff_id": run.staff_id})

    @activity.defn(name="put_documents_on_record")
    async def put_documents_on_record(self, run: OnboardingInput) -> list[int]:
        return list(range(40, 40 + len(self.facts.documents)))

    @activity.defn(name="lookup_practitioner")
    async def lookup_practitioner(self, run: OnboardingInput) -> PractitionerRecord:
        self.lookups += 1
        if self.gate is not None:
            await self.gate.wait()
        return self.registry

    @activity.defn(name="record_checks")
    async def record_checks(self, state: OnboardingState) -> None:
        self.checks.append(state)

    @activity.defn(name="finish_onboarding")
    async def finish_onboarding(self, decision: OnboardingDecision) -> None:
        self.decisions.append(decision)

    def running(self, client: Client, queue: str) -> Any:
        return workers(
            client,
            queue,
            [OnboardingWorkflow],
            [self.application_facts, self.put_documents_on_record, self.record_checks, self.finish_onboarding],
            [self.lookup_practitioner, self.send_notice],
        )


class InstitutionWorld(Notices):
    def __init__(self) -> None:
        super().__init__()
        # What the platform answers to each status query, in turn (the last one repeats).
        self.answers = [
            RegistrationStatus(state=RegistrationState.APPROVED, decided_at=datetime(2026, 12, 1, tzinfo=UTC))
        ]
        self.refusal: tuple[str, str] | None = None
        self.polls: list[int] = []
        self.recorded: list[InstitutionState] = []
        self.verification = Verification(
            verified=True, detail="监管平台查询结果与登记信息一致", checked_at=datetime(2026, 12, 1, tzinfo=UTC)
        )

    @activity.defn(name="submit_institution")
    async def submit_institution(self, run: InstitutionInput) -> RegistrationReceipt:
        if self.refusal is not None:
            code, message = self.refusal
            raise ApplicationError(message, type=code, non_retryable=True)
        return RegistrationReceipt(platform_ref="SBJG0001", received_at=datetime(2026, 12, 1, tzinfo=UTC))

    @activity.defn(name="registration_status")
    async def registration_status(self, run: InstitutionInput, platform_ref: str, poll: int) -> RegistrationStatus:
        self.polls.append(poll)
        return self.answers[min(poll, len(self.answers) - 1)]

    @activity.defn(name="verify_institution")
    async def verify_institution(self, run: InstitutionInput) -> Verification:
        return self.verification

    @activity.defn(name="record_institution")
    async def record_institution(self, state: InstitutionState) -> None:
        self.recorded.append(state.model_copy(deep=True))

    def running(self, client: Client, queue: str) -> Any:
        return workers(
            client,
            queue,
            [InstitutionRegistrationWorkflow],
            [self.record_institution],
            [self.submit_institution, self.registration_status, self.verify_institution, self.send_notice],
        )


class ReverificationWorld(Notices):
    """Institutions with a status each; the platform confirms every one except those in `revoked`."""

    def __init__(self, statuses: dict[str, InstitutionStatus]) -> None:
        super().__init__()
        self.statuses = dict(statuses)
        self.revoked: set[str] = set()
        self.checks: list[ReverificationCheck] = []

    @activity.defn(name="approved_institutions")
    async def approved_institutions(self) -> list[str]:
        return [key for key, status in self.statuses.items() if status is InstitutionStatus.APPROVED]

    @activity.defn(name="reverify_institution")
    async def reverify_institution(self, check: ReverificationCheck) -> Verification:
        found = check.institution_id not in self.revoked
        return Verification(
            verified=found,
            detail="监管平台查询结果与登记信息一致" if found else "监管平台显示该机构未获批准",
            checked_at=datetime(2026, 12, 2, tzinfo=UTC),
            record=InstitutionRecord(found=True, code=f"PDY-{check.institution_id}", approved=found),
        )

    @activity.defn(name="record_reverification")
    async def record_reverification(
        self, check: ReverificationCheck, verification: Verification
    ) -> ReverificationResult:
        self.checks.append(check)
        before = self.statuses[check.institution_id]
        after = status_after_reverification(before, verification.verified, check.requested_by)
        self.statuses[check.institution_id] = after
        return ReverificationResult(
            check_id=check.check_id,
            institution_id=check.institution_id,
            code=f"PDY-{check.institution_id}",
            name="岐黄中医互联网医院",
            status_before=before,
            status_after=after,
            verification=verification,
        )

    def running(self, client: Client, queue: str) -> Any:
        return workers(
            client,
            queue,
            [InstitutionReverificationWorkflow],
            [self.approved_institutions, self.record_reverification],
            [self.reverify_institution, self.send_notice],
        )


class IdentityWorld(Notices):
    def __init__(self) -> None:
        super().__init__()
        self.liveness = LivenessResult(passed=True, score=96, provider_ref="SBLV1")
        self.liveness_checks: list[tuple[IdentityCheckInput, LivenessResult]] = []
        self.results: list[RealNameResult] = []

    @activity.defn(name="verify_identity")
    async def verify_identity(self, check: IdentityCheckInput) -> RealNameResult:
        return RealNameResult(matched=True)

    @activity.defn(name="check_liveness")
    async def check_liveness(self, check: IdentityCheckInput) -> LivenessResult:
        return self.liveness

    @activity.defn(name="record_liveness")
    async def record_liveness(self, check: IdentityCheckInput, result: LivenessResult) -> None:
        self.liveness_checks.append((check, result))

    @activity.defn(name="record_identity_result")
    async def record_identity_result(self, check: IdentityCheckInput, result: RealNameResult) -> None:
        self.results.append(result)

    def running(self, client: Client, queue: str) -> Any:
        return workers(
            client,
            queue,
            [IdentityVerificationWorkflow],
            [self.record_liveness, self.record_identity_result],
            [self.verify_identity, self.check_liveness, self.send_notice],
        )


class HousekeepingWorld:
    def __init__(self) -> None:
        self.windows: list[int] = []

    @activity.defn(name="purge_login_throttle")
    async def purge_login_throttle(self, window_s: int) -> int:
        self.windows.append(window_s)
        return 3

    def running(self, client: Client, queue: str) -> Any:
        return workers(client, queue, [SecurityHousekeepingWorkflow], [self.purge_login_throttle], [])

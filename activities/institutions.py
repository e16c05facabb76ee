"""Institution registration steps (8.5.4): submit to the supervision platform, ask for its decision, look the
institution up once approved, and record where the registration stands; later, look approved institutions up again
and suspend the ones the platform no longer confirms."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.adapters.supervision import SupervisionPlatform
from activities.errors import business_error, refusals_are_final
from models.institution import (
    InstitutionFiling,
    InstitutionInput,
    InstitutionState,
    InstitutionStatus,
    RegistrationReceipt,
    RegistrationStatus,
    ReverificationCheck,
    ReverificationResult,
    Verification,
    status_after_reverification,
)
from models.tables import Institution, InstitutionReverification


class InstitutionActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], platform: SupervisionPlatform) -> None:
        self._sessions = sessions
        self._platform = platform

    async def _institution(self, run: InstitutionInput) -> Institution:
        async with self._sessions() as session:
            row = await session.get(Institution, run.institution_id)
        if row is None or row.attempt != run.attempt:
            raise business_error("SUBMISSION_SUPERSEDED", "机构登记已重新提交")
        return row

    @activity.defn
    async def submit_institution(self, run: InstitutionInput) -> RegistrationReceipt:
        row = await self._institution(run)
        filing = InstitutionFiling(
            code=row.code, name=row.name, kind=row.kind, licence_no=row.licence_no, access_ips=row.access_ips
        )
        return await refusals_are_final(
            self._platform.register_institution(
                idempotency_key=f"institution-{run.institution_id}:{run.attempt}:register", filing=filing
            )
        )

    @activity.defn
    async def registration_status(self, run: InstitutionInput, platform_ref: str, poll: int) -> RegistrationStatus:
        return await refusals_are_final(
            self._platform.registration_status(
                idempotency_key=f"institution-{run.institution_id}:{run.attempt}:status:{poll}",
                platform_ref=platform_ref,
            )
        )

    @activity.defn
    async def verify_institution(self, run: InstitutionInput) -> Verification:
        row = await self._institution(run)
        return await self._look_up(row, f"institution-{run.institution_id}:{run.attempt}:lookup")

    async def _look_up(self, row: Institution, idempotency_key: str) -> Verification:
        """8.5.4.4: the platform's look-up must know the institution, approved, under the name and type we keep."""
        record = await self._platform.lookup_institution(idempotency_key=idempotency_key, code=row.code)
        problems = []
        if not record.found:
            problems.append("监管平台查询不到该机构")
        else:
            if not record.approved:
                problems.append("监管平台显示该机构未获批准")
            if record.name != row.name:
                problems.append(f"平台登记的机构名称为“{record.name}”")
            if record.kind not in (None, row.kind):
                problems.append(f"平台登记的机构类型为“{record.kind}”")
        detail = "监管平台查询结果与登记信息一致" if not problems else "；".join(problems)
        return Verification(verified=not problems, detail=detail, checked_at=datetime.now(UTC), record=record)

    @activity.defn
    async def record_institution(self, state: InstitutionState) -> None:
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            row = await session.get(Institution, state.institution_id, with_for_update=True)
            if row is None or row.attempt != state.attempt:
                return
            if row.status == InstitutionStatus.DRAFT or state.status is InstitutionStatus.SUBMITTED:
                row.submitted_at = row.submitted_at or now
            if state.status in (InstitutionStatus.APPROVED, InstitutionStatus.REJECTED) and row.decided_at is None:
                row.decided_at = now
            row.status, row.platform_ref, row.reason = str(state.status), state.platform_ref, state.reason
            if state.verification is not None:
                row.verification = state.verification.model_dump(mode="json")
                row.verified_at = state.verification.checked_at if state.verification.verified else None

    @activity.defn
    async def approved_institutions(self) -> list[str]:
        """What the periodic re-verification looks up: every approved institution (a suspended one waits for an
        admin)."""
        async with self._sessions() as session:
            found = await session.execute(
                select(col(Institution.id))
                .where(col(Institution.status) == str(InstitutionStatus.APPROVED))
                .order_by(col(Institution.created_at), col(Institution.id))
            )
            return list(found.scalars())

    @activity.defn
    async def reverify_institution(self, check: ReverificationCheck) -> Verification:
        async with self._sessions() as session:
            row = await session.get(Institution, check.institution_id)
        if row is None:
            raise business_error("NOT_FOUND", "机构登记记录不存在")
        return await self._look_up(row, f"institution-reverify:{check.check_id}")

    @activity.defn
    async def record_reverification(
        self, check: ReverificationCheck, verification: Verification
    ) -> ReverificationResult:
        """Keep the look-up (who asked, when, what the platform answered) and act on it: an approved institution the
        platform no longer confirms is suspended; a suspended one it confirms again is reinstated, but only when an
        admin asked (a suspension is lifted by a person, not by the next scheduled look-up). An institution
        submitted again meanwhile keeps its status. Once recorded, a retry answers the same."""
        async with self._sessions() as session, session.begin():
            row = await session.get(Institution, check.institution_id, with_for_update=True)
            if row is None:
                raise business_error("NOT_FOUND", "机构登记记录不存在")
            kept = await session.get(InstitutionReverification, check.check_id)
            if kept is None:
                before = InstitutionStatus(row.status)
                after = status_after_reverification(before, verification.verified, check.requested_by)
                _apply(row, before, after, verification)
                answer = verification.record
                kept = InstitutionReverification(
                    id=check.check_id,
                    institution_id=row.id,
                    requested_by=check.requested_by,
                    checked_at=verification.checked_at,
                    verified=verification.verified,
                    detail=verification.detail,
                    platform_record=None if answer is None else answer.model_dump(mode="json"),
                    status_before=str(before),
                    status_after=str(after),
                )
                session.add(kept)
            return ReverificationResult(
                check_id=kept.id,
                institution_id=row.id,
                code=row.code,
                name=row.name,
                status_before=InstitutionStatus(kept.status_before),
                status_after=InstitutionStatus(kept.status_after),
                verification=verification,
            )


def _apply(row: Institution, before: InstitutionStatus, after: InstitutionStatus, verification: Verification) -> None:
    """The look-up's mark on the institution: confirmed and approved, the verification is fresh; suspended and not
    confirmed, the latest answer is the reason (the suspension dates from the first). Anything else (a scheduled
    confirmation of a suspended institution, one submitted again meanwhile) is only kept in its record."""
    if after is InstitutionStatus.APPROVED and verification.verified:
        row.verification = verification.model_dump(mode="json")
        row.verified_at = verification.checked_at
        row.suspended_at = row.reason = None
    elif after is InstitutionStatus.SUSPENDED and not verification.verified:
        row.verification = verification.model_dump(mode="json")
        row.reason = verification.detail
        if before is not InstitutionStatus.SUSPENDED:
            row.suspended_at = verification.checked_at
    row.status = str(after)

"""Institution registration steps (8.5.4): submit to the supervision platform, ask for its decision, look the
institution up once approved, and record where the registration stands."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
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
    Verification,
)
from models.tables import Institution


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
        """8.5.4.4: the platform's look-up must know the institution, approved, under the name and type we keep."""
        row = await self._institution(run)
        record = await self._platform.lookup_institution(
            idempotency_key=f"institution-{run.institution_id}:{run.attempt}:lookup", code=row.code
        )
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
        return Verification(verified=not problems, detail=detail, checked_at=datetime.now(UTC))

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

"""Institution registration steps against PostgreSQL and the sandbox supervision platform."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update
from sqlmodel import col
from temporalio.exceptions import ApplicationError

from activities.adapters.supervision.sandbox import SandboxSupervision
from activities.institutions import InstitutionActivities
from models.institution import (
    SYSTEM_CHECKER,
    InstitutionInput,
    InstitutionState,
    InstitutionStatus,
    RegistrationState,
    ReverificationCheck,
)
from models.tables import Institution, InstitutionReverification


@pytest.fixture
def platform(sessions, settings) -> SandboxSupervision:  # type: ignore[no-untyped-def]
    return SandboxSupervision(sessions, settings)


async def _institution(sessions, **overrides: object) -> Institution:  # type: ignore[no-untyped-def]
    code = f"PDY{uuid.uuid4().hex[:10].upper()}"
    fields: dict[str, object] = {
        "id": f"inst-{uuid.uuid4().hex[:10]}",
        "code": code,
        "name": "岐黄中医互联网医院",
        "kind": "互联网医院",
        "licence_no": code,
        "access_ips": ["203.0.113.10"],
        "attempt": 1,
        "status": "submitted",
        **overrides,
    }
    row = Institution(**fields)  # type: ignore[arg-type]
    async with sessions() as session, session.begin():
        session.add(row)
    return row


async def test_submitted_approved_and_verified(sessions, platform) -> None:  # type: ignore[no-untyped-def]
    steps = InstitutionActivities(sessions, platform)
    row = await _institution(sessions)
    run = InstitutionInput(institution_id=row.id, attempt=1)
    receipt = await steps.submit_institution(run)
    assert await steps.submit_institution(run) == receipt  # the same submission, the same receipt
    status = await steps.registration_status(run, receipt.platform_ref, 0)
    assert status.state is RegistrationState.APPROVED
    verification = await steps.verify_institution(run)
    assert verification.verified, verification.detail

    state = InstitutionState(
        institution_id=row.id,
        attempt=1,
        status=InstitutionStatus.APPROVED,
        platform_ref=receipt.platform_ref,
        verification=verification,
    )
    await steps.record_institution(state)
    async with sessions() as session:
        stored = await session.get(Institution, row.id)
    assert stored is not None
    assert (stored.status, stored.platform_ref) == ("approved", receipt.platform_ref)
    assert stored.decided_at is not None and stored.verified_at == verification.checked_at
    assert stored.verification == verification.model_dump(mode="json")


async def test_verification_names_what_differs(sessions, platform) -> None:  # type: ignore[no-untyped-def]
    steps = InstitutionActivities(sessions, platform)
    row = await _institution(sessions)
    run = InstitutionInput(institution_id=row.id, attempt=1)
    await steps.submit_institution(run)
    async with sessions() as session, session.begin():
        stored = await session.get(Institution, row.id)
        assert stored is not None
        stored.name = "另一家医院"
    verification = await steps.verify_institution(run)
    assert not verification.verified and "岐黄中医互联网医院" in verification.detail


async def test_a_malformed_filing_is_a_final_refusal(sessions, platform) -> None:  # type: ignore[no-untyped-def]
    steps = InstitutionActivities(sessions, platform)
    row = await _institution(sessions, access_ips=["not-an-ip"])
    with pytest.raises(ApplicationError) as refused:
        await steps.submit_institution(InstitutionInput(institution_id=row.id, attempt=1))
    assert refused.value.type == "INVALID_FILING" and refused.value.non_retryable


@pytest.fixture
async def approved(sessions, platform) -> AsyncIterator[Institution]:  # type: ignore[no-untyped-def]
    """An institution the sandbox platform registered and approved. While any institution is suspended the hospital
    takes no bookings, so none of this test's is left suspended for the tests after it."""
    steps = InstitutionActivities(sessions, platform)
    row = await _institution(sessions)
    run = InstitutionInput(institution_id=row.id, attempt=1)
    receipt = await steps.submit_institution(run)
    await steps.record_institution(
        InstitutionState(
            institution_id=row.id,
            attempt=1,
            status=InstitutionStatus.APPROVED,
            platform_ref=receipt.platform_ref,
            verification=await steps.verify_institution(run),
        )
    )
    yield row
    async with sessions() as session, session.begin():
        await session.execute(
            update(Institution)
            .where(col(Institution.id) == row.id, col(Institution.status) == "suspended")
            .values(status="rejected")
        )


def _check(row: Institution, requested_by: str = SYSTEM_CHECKER) -> ReverificationCheck:
    return ReverificationCheck(
        check_id=f"run-{uuid.uuid4().hex}:{row.id}", institution_id=row.id, requested_by=requested_by
    )


async def _stored(sessions, institution_id: str) -> Institution:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        stored = await session.get(Institution, institution_id)
    assert stored is not None
    return stored


async def test_a_revoked_licence_suspends_and_only_an_admin_lifts_it(sessions, platform, approved) -> None:  # type: ignore[no-untyped-def]
    steps = InstitutionActivities(sessions, platform)
    assert approved.id in await steps.approved_institutions()

    # Still confirmed: approved, with the platform's answer kept.
    check = _check(approved)
    confirmed = await steps.record_reverification(check, await steps.reverify_institution(check))
    assert (confirmed.status_before, confirmed.status_after) == (InstitutionStatus.APPROVED, InstitutionStatus.APPROVED)

    # The platform withdraws its approval: suspended, with its answer as the reason.
    platform.refused.add(approved.code)
    check = _check(approved)
    verification = await steps.reverify_institution(check)
    assert not verification.verified and verification.record is not None and not verification.record.approved
    suspended = await steps.record_reverification(check, verification)
    assert suspended.status_after is InstitutionStatus.SUSPENDED
    # A retried step finds its record and answers the same.
    assert await steps.record_reverification(check, verification) == suspended
    stored = await _stored(sessions, approved.id)
    assert (stored.status, stored.reason) == ("suspended", "监管平台显示该机构未获批准")
    assert stored.suspended_at == verification.checked_at and stored.verified_at is not None
    assert approved.id not in await steps.approved_institutions()

    # Confirmed again: the scheduled look-up leaves it suspended; an admin's reinstates it.
    platform.refused.discard(approved.code)
    check = _check(approved)
    assert (await steps.record_reverification(check, await steps.reverify_institution(check))).status_after is (
        InstitutionStatus.SUSPENDED
    )
    assert (await _stored(sessions, approved.id)).reason == "监管平台显示该机构未获批准"
    check = _check(approved, requested_by="u-admin")
    verification = await steps.reverify_institution(check)
    reinstated = await steps.record_reverification(check, verification)
    assert reinstated.status_after is InstitutionStatus.APPROVED
    stored = await _stored(sessions, approved.id)
    assert (stored.status, stored.reason, stored.suspended_at) == ("approved", None, None)
    assert stored.verified_at == verification.checked_at

    async with sessions() as session:
        kept = (
            (
                await session.execute(
                    select(InstitutionReverification)
                    .where(col(InstitutionReverification.institution_id) == approved.id)
                    .order_by(col(InstitutionReverification.checked_at))
                )
            )
            .scalars()
            .all()
        )
    assert [(k.requested_by, k.verified, k.status_before, k.status_after) for k in kept] == [
        (SYSTEM_CHECKER, True, "approved", "approved"),
        (SYSTEM_CHECKER, False, "approved", "suspended"),
        (SYSTEM_CHECKER, True, "suspended", "suspended"),
        ("u-admin", True, "suspended", "approved"),
    ]
    assert kept[1].platform_record == {
        "found": True,
        "code": approved.code,
        "name": approved.name,
        "kind": approved.kind,
        "approved": False,
    }

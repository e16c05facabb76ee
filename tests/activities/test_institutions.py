"""Institution registration steps against PostgreSQL and the sandbox supervision platform."""

from __future__ import annotations

import uuid

import pytest
from temporalio.exceptions import ApplicationError

from activities.adapters.supervision.sandbox import SandboxSupervision
from activities.institutions import InstitutionActivities
from models.institution import InstitutionInput, InstitutionState, InstitutionStatus, RegistrationState
from models.tables import Institution


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
